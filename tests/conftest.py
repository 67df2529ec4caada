"""Fixtures shared by the adapter suites: a fake clock, the Entra emulator on a loopback HTTPS
server whose CA the process trusts through each library's own convention, and the five paths."""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

import pytest

from azid_core.testing import IdentityEmulator
from tests.loopback import LoopbackServer, guard_network
from tests.paths import Path, all_paths

if TYPE_CHECKING:
    from collections.abc import Iterator

    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

# Every test runs with this guard: any connection or name lookup off the loopback interface fails.
guard_network()

START = 1_800_000_000.0
TENANT, CLIENT, SECRET = "tenant-one", "app-0001", "s3cr3t-V4lue~with.chars"


class FakeClock:
    """Wall-clock epoch seconds that move only when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def signing_key() -> RSAPrivateKey:
    """One RSA key for the session's emulators: generating one costs about 50 ms."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def emulator(clock: FakeClock, signing_key: RSAPrivateKey) -> IdentityEmulator:
    emulator = IdentityEmulator(clock=clock, signing_key=signing_key)
    emulator.add_app(TENANT, CLIENT, SECRET)
    return emulator


@pytest.fixture
def server(emulator: IdentityEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    """The emulator over HTTPS on 127.0.0.1. REQUESTS_CA_BUNDLE (requests) and SSL_CERT_FILE (httpx,
    and ssl.create_default_context for azid_trio) name its CA, as a user's environment would."""
    with LoopbackServer(emulator) as server, server.ca_file() as ca_file:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        yield server


@pytest.fixture(params=list(all_paths()), ids=repr)
def path(request: pytest.FixtureRequest) -> Iterator[Path]:
    chosen: Path = request.param
    chosen.start()
    try:
        yield chosen
    finally:
        chosen.stop()


class RawServer:
    """A loopback TCP server that misbehaves: `reset` answers every request with a TCP reset,
    `hang` reads it and never answers. Accepted sockets are closed when the server stops."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._clients: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        self._listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._clients.append(client)
            client.settimeout(2)
            try:
                if client.recv(65536):
                    self.requests += 1
            except OSError:
                continue
            if self.mode == "reset":
                # SO_LINGER with a zero timeout turns close() into a TCP RST.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                client.close()

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for client in self._clients:
            client.close()
        self._listener.close()


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
