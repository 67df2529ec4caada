"""What the benchmarks share: one loopback Entra server, the credentials under test, and tables.

Every credential is pointed at a `tests.loopback.LoopbackServer` on 127.0.0.1; an audit hook makes
any attempt to resolve or connect to another host fail loudly, so nothing leaves the machine.
"""

from __future__ import annotations

import gc
import importlib
import json
import multiprocessing
import os
import random
import statistics
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast
from urllib.parse import urlsplit

from azid_core import ClientSecretCredential
from azid_core.acquire import TokenCall, acquire_flow
from azid_core.drive import run
from azid_core.effects import HttpRequest, HttpResponse
from azid_core.flight import FlightTable
from azid_core.testing import EntraEmulator
from tests.loopback import LoopbackServer, guard_network

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Sequence
    from multiprocessing.connection import Connection

    from azid_core.acquire import TokenSource
    from azid_core.effects import Effect, Reply

TENANT = "72f988bf-0000-4000-8000-00000000beef"
CLIENT_ID = "0a1b2c3d-0000-4000-8000-0000000000c1"
SECRET = "benchmark-client-secret"
SCOPE = "https://vault.azure.net/.default"
T = TypeVar("T")


def _json(body: dict[str, Any]) -> HttpResponse:
    return HttpResponse(
        200, (("Content-Type", "application/json; charset=utf-8"),), json.dumps(body).encode()
    )


class DiscoveryHandler:
    """The Entra emulator, plus the metadata GETs msal (azure-identity) makes before a token POST."""

    def __init__(self, emulator: EntraEmulator) -> None:
        self.emulator = emulator
        # In shared memory: a server in a forked child counts where this process reads.
        self._served = multiprocessing.RawValue("q", 0)

    @property
    def served(self) -> int:
        """Requests answered so far."""
        count: int = self._served.value
        return count

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self._served.value += 1
        parts = urlsplit(request.url)
        base = f"{parts.scheme}://{parts.netloc}"
        if request.method == "GET" and parts.path.endswith("/v2.0/.well-known/openid-configuration"):
            tenant = parts.path.split("/")[1]
            return _json(
                {
                    "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
                    "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
                    "issuer": f"{base}/{tenant}/v2.0",
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                }
            )
        if request.method == "GET" and parts.path == "/common/discovery/instance":
            endpoint = f"{base}/{TENANT}/v2.0/.well-known/openid-configuration"
            return _json({"tenant_discovery_endpoint": endpoint, "api-version": "1.1", "metadata": []})
        return self.emulator(request)


@dataclass
class Bench:
    url: str
    emulator: EntraEmulator
    handler: DiscoveryHandler
    ca_file: str


@contextmanager
def serve(*, apart: bool = False) -> Iterator[Bench]:
    """Start the one loopback HTTPS server of a benchmark and make every client in this process trust
    it: REQUESTS_CA_BUNDLE (requests, azure-identity) and SSL_CERT_FILE (httpx, the stdlib default).

    `apart`: the server runs in a forked child process (where fork exists), so that its work (TLS,
    signing each token) never waits for, or holds, this process's GIL: less noise in timings of a
    few milliseconds. Its emulator is then a copy: register everything before `serve`."""
    guard_network()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        os.environ.pop(name, None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    os.environ.pop("AZURE_AUTHORITY_HOST", None)
    emulator = EntraEmulator(clock=time.time)
    emulator.add_app(TENANT, CLIENT_ID, SECRET)
    handler = DiscoveryHandler(emulator)
    with LoopbackServer.ca().cert_pem.tempfile() as ca_file:
        os.environ["REQUESTS_CA_BUNDLE"] = ca_file
        os.environ["SSL_CERT_FILE"] = ca_file
        if apart and "fork" in multiprocessing.get_all_start_methods():
            with _server_in_child(handler) as url:
                yield Bench(url, emulator, handler, ca_file)
        else:
            with LoopbackServer(handler, tls=True) as server:
                yield Bench(server.url, emulator, handler, ca_file)


@contextmanager
def _server_in_child(handler: DiscoveryHandler) -> Iterator[str]:
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    child = context.Process(target=_serve_until_told, args=(handler, theirs), daemon=True)
    child.start()
    try:
        url: str = ours.recv()
        yield url
    finally:
        ours.send("stop")
        child.join(5)
        if child.is_alive():
            child.kill()


def _serve_until_told(handler: DiscoveryHandler, pipe: Connection) -> None:
    with LoopbackServer(handler, tls=True) as server:
        pipe.send(server.url)
        pipe.recv()


# -- the credentials under test --


class SyncCredential(Protocol):
    def get_token(self, *scopes: str) -> object: ...
    def close(self) -> None: ...


class AsyncCredential(Protocol):
    def get_token(self, *scopes: str) -> Awaitable[object]: ...
    def close(self) -> Awaitable[None]: ...


@dataclass
class SyncPath:
    name: str
    make: Callable[[], SyncCredential] | None
    skip: str = ""
    azure_identity: bool = False


@dataclass
class AsyncPath:
    name: str
    loop: str  # "asyncio" or "trio"
    make: Callable[[], AsyncCredential] | None
    skip: str = ""
    azure_identity: bool = False


def first_request(source: TokenSource, answer: Callable[[HttpRequest], HttpResponse]) -> HttpRequest:
    """The first request azid's flow makes for a token from `source`, each answered by `answer` (an
    emulator): what the "library alone" rows send, so that they make the same request azid makes."""
    seen: list[HttpRequest] = []

    def send(effect: Effect) -> Reply:
        assert isinstance(effect, HttpRequest), effect
        seen.append(effect)
        return answer(effect)

    call = TokenCall((SCOPE,), None, None, False)
    run(acquire_flow(source, call, FlightTable(threading.Event), time.time()), send)
    return seen[0]


def freeze_heap() -> None:
    """Collect, then freeze what is alive (modules, servers, lazily built state) after the untimed
    round: the collection before each sample then looks only at what later samples left, instead of
    walking the whole heap, which took most of a sample's time and left the CPU caches cold."""
    gc.collect()
    gc.freeze()


def shuffled_rounds(items: Sequence[T], rounds: int, *, seed: int = 1) -> Iterator[list[T]]:
    """Each round's order: every item once, shuffled anew (seeded, so runs repeat). A rotated list
    would keep each item behind the same neighbour in every round, and what one path leaves behind
    (a loop's threads, a server still closing a connection, caches full of its library) would
    always fall on the same next path."""
    order = random.Random(seed)
    for _ in range(rounds):
        yield order.sample(list(items), len(items))


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def core(url: str) -> ClientSecretCredential:
    return ClientSecretCredential(TENANT, CLIENT_ID, SECRET, authority=url)


def sync_paths(url: str) -> list[SyncPath]:
    """requests, httpx (sync), azure-identity (sync); a path whose import fails is kept as skipped."""
    paths: list[SyncPath] = []
    try:
        import azid_requests

        paths.append(SyncPath("azid_requests", lambda: azid_requests.Credential(core(url))))
    except ImportError as exc:
        paths.append(SyncPath("azid_requests", None, _reason(exc)))
    try:
        import azid_httpx

        paths.append(SyncPath("azid_httpx (sync)", lambda: azid_httpx.Credential(core(url))))
    except ImportError as exc:
        paths.append(SyncPath("azid_httpx (sync)", None, _reason(exc)))
    name = "azure-identity (sync)"
    try:
        from azure.identity import ClientSecretCredential as AzureClientSecretCredential

        def azure() -> SyncCredential:
            # No instance discovery: it would ask login.microsoftonline.com about the authority.
            credential = AzureClientSecretCredential(
                TENANT, CLIENT_ID, SECRET, authority=url, disable_instance_discovery=True
            )
            return cast("SyncCredential", credential)

        paths.append(SyncPath(name, azure, azure_identity=True))
    except ImportError as exc:
        paths.append(SyncPath(name, None, _reason(exc), azure_identity=True))
    return paths


def async_paths(url: str) -> list[AsyncPath]:
    """httpx async (its own AsyncClient) on asyncio and on trio, azid_trio (h11 on trio streams),
    azure-identity async (needs aiohttp)."""
    paths: list[AsyncPath] = []
    try:
        import azid_httpx

        def httpx_async() -> AsyncCredential:
            return azid_httpx.AsyncCredential(core(url))

        paths.append(AsyncPath("azid_httpx (async, asyncio)", "asyncio", httpx_async))
        try:
            importlib.import_module("trio")
            paths.append(AsyncPath("azid_httpx (async, trio)", "trio", httpx_async))
        except ImportError as exc:
            paths.append(AsyncPath("azid_httpx (async, trio)", "trio", None, _reason(exc)))
    except ImportError as exc:
        paths.append(AsyncPath("azid_httpx (async, asyncio)", "asyncio", None, _reason(exc)))
        paths.append(AsyncPath("azid_httpx (async, trio)", "trio", None, _reason(exc)))
    try:
        # Imported by name: azid_trio.Credential may not exist yet, and mypy must not require it.
        credential_class = importlib.import_module("azid_trio").Credential

        def trio_h11() -> AsyncCredential:
            return cast("AsyncCredential", credential_class(core(url)))

        paths.append(AsyncPath("azid_trio (trio)", "trio", trio_h11))
    except (ImportError, AttributeError) as exc:
        paths.append(AsyncPath("azid_trio (trio)", "trio", None, _reason(exc)))
    name = "azure-identity (async, asyncio)"
    try:
        importlib.import_module("aiohttp")
        from azure.identity.aio import ClientSecretCredential as AzureAsyncClientSecretCredential

        def azure_async() -> AsyncCredential:
            credential = AzureAsyncClientSecretCredential(
                TENANT, CLIENT_ID, SECRET, authority=url, disable_instance_discovery=True
            )
            return cast("AsyncCredential", credential)

        paths.append(AsyncPath(name, "asyncio", azure_async, azure_identity=True))
    except ImportError as exc:
        paths.append(AsyncPath(name, "asyncio", None, _reason(exc), azure_identity=True))
    return paths


def run_async(loop: str, main: Callable[[], Awaitable[Any]]) -> Any:
    """Run `main` in a fresh event loop of the named kind and return its result."""
    if loop == "trio":
        import trio

        return trio.run(main)
    import asyncio

    async def wrapper() -> Any:
        return await main()

    return asyncio.run(wrapper())


# -- numbers and tables --


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x"
