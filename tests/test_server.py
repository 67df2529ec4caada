"""azid.server: the emulator on 127.0.0.1 over HTTP and HTTPS (its own CA), loopback only, a clear
error for a taken port; and the same scripted scenario answered alike in-process and through it."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

import azid_requests
from azid.emulator import CLIENT_ID, CLIENT_SECRET, TENANT_ID, new_emulator
from azid.server import EmulatorServer, ServerError, write_certificates
from azid_core.effects import HttpResponse
from azid_core.entra.confidential import ClientSecretCredential
from azid_core.errors import AzidError
from azid_core.frontend import CredentialBase
from azid_core.testing import Fault, IdentityEmulator

if TYPE_CHECKING:
    from azid_core.effects import HttpRequest

START = 1_800_000_000.0
SCOPE = "https://vault.azure.net/.default"


def echo(request: HttpRequest) -> HttpResponse:
    # A Content-Length of the handler's own is replaced by the server's.
    headers = (("X-Seen", f"{request.method} {request.url}"), ("Content-Length", "999"))
    return HttpResponse(201, headers, request.body[::-1])


def test_https_with_its_own_ca_and_the_ca_removed_on_close() -> None:
    with EmulatorServer(echo, tls=True) as server:
        assert server.url == f"https://127.0.0.1:{server.port}"
        assert server.ca_file is not None
        ca_file = server.ca_file
        reply = requests.post(server.url + "/a?b=c", data=b"abc", verify=ca_file, timeout=5)
        assert (reply.status_code, reply.content) == (201, b"cba")
        assert reply.headers["X-Seen"] == f"POST {server.url}/a?b=c"
        # Not trusted without the CA: it vouches for this server only.
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.url, verify=True, timeout=5)
    assert not Path(ca_file).exists()


def test_plain_http_has_no_ca() -> None:
    with EmulatorServer(echo, tls=False) as server:
        assert server.ca_file is None
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url + "/x") as reply:
            assert reply.status == 201
            assert reply.headers["X-Seen"] == f"GET {server.url}/x"


@pytest.mark.parametrize("host", ["0.0.0.0", "localhost", "::1", "192.168.1.10"])
def test_only_loopback_is_bound(host: str) -> None:
    with pytest.raises(ServerError) as caught:
        EmulatorServer(echo, host=host)
    assert str(caught.value) == f"the emulator binds 127.0.0.1 only, not {host}"


def test_a_taken_port_is_one_clear_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ServerError) as caught:
            EmulatorServer(echo, port=port)
    assert str(caught.value) == f"cannot listen on 127.0.0.1:{port}: Address already in use"


def test_a_server_never_started_closes(tmp_path: Path) -> None:
    server = EmulatorServer(echo, tls=True)
    server.close()
    assert server.ca_file is not None
    assert not Path(server.ca_file).exists()


def test_the_certificate_names_127_0_0_1_and_localhost_and_each_server_has_its_own_ca(tmp_path: Path) -> None:
    other_ca, _ = write_certificates(tmp_path)
    with EmulatorServer(echo, tls=True) as server:
        for host in ("127.0.0.1", "localhost"):
            reply = requests.get(f"https://{host}:{server.port}/", verify=server.ca_file, timeout=5)
            assert reply.status_code == 201
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.url, verify=str(other_ca), timeout=5)


class InProcess(CredentialBase):
    """The emulator as the effect handler: no socket at all."""

    def __init__(self, core: ClientSecretCredential, emulator: IdentityEmulator) -> None:
        super().__init__(core, clock=lambda: START)
        self._emulator = emulator

    def _http(self, request: HttpRequest) -> HttpResponse:
        return self._emulator(request)

    def close(self) -> None:
        """Nothing to close."""


def test_in_process_and_loopback_give_the_same_tokens() -> None:
    """One scripted scenario (a 429 with Retry-After, then tokens for two scopes) on a fixed clock."""

    def scenario(emulator: IdentityEmulator, credential: CredentialBase) -> list[dict[str, object]]:
        emulator.fail_next(Fault(429, {"error": "temporarily_unavailable"}, (("Retry-After", "0"),)))
        with credential:
            tokens = [
                credential.get_token(SCOPE).token,
                credential.get_token("https://storage.azure.com/.default").token,
            ]
        return [emulator.decode(token) for token in tokens]

    direct = new_emulator(clock=lambda: START)
    core = ClientSecretCredential(
        TENANT_ID, CLIENT_ID, CLIENT_SECRET, authority="https://127.0.0.1:1", env={}
    )
    in_process = scenario(direct, InProcess(core, direct))

    served = new_emulator(clock=lambda: START)
    with EmulatorServer(served, tls=True) as server:
        session = requests.Session()
        session.verify = server.ca_file
        session.trust_env = False
        core = ClientSecretCredential(TENANT_ID, CLIENT_ID, CLIENT_SECRET, authority=server.url, env={})
        loopback = scenario(served, azid_requests.Credential(core, session, clock=lambda: START))
    assert in_process == loopback
    assert [claims["aud"] for claims in loopback] == ["https://vault.azure.net", "https://storage.azure.com"]
    assert [claims["iat"] for claims in loopback] == [int(START)] * 2
    assert len(direct.requests) == len(served.requests) == 3  # the 429, then two tokens


def test_a_dropped_connection_and_a_slow_reply_are_acted_out_on_the_socket() -> None:
    emulator = new_emulator(clock=lambda: START)
    with EmulatorServer(emulator, tls=True) as server:
        session = requests.Session()
        session.verify = server.ca_file
        session.trust_env = False
        core = ClientSecretCredential(TENANT_ID, CLIENT_ID, CLIENT_SECRET, authority=server.url, env={})
        with azid_requests.Credential(core, session) as credential:
            emulator.fail_next(Fault(200, {"access_token": "x" * 64, "expires_in": 3600}, drop=10))
            with pytest.raises(AzidError, match=r"\(closed\)"):
                credential.get_token(SCOPE)
            emulator.fail_next(Fault(503, {"error": "busy"}, (("Retry-After", "0"),), delay=0.01))
            assert emulator.decode(credential.get_token(SCOPE).token)["aud"] == "https://vault.azure.net"
    assert emulator.delays == []  # slept by the server, not reported as in-process
