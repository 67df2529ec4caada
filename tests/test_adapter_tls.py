"""`pin_sha1`, `tls_server_name`, `ca_pem` and `bypass_proxy` on every adapter path, over real TLS on
127.0.0.1 (PROTOCOL.md §0.1, §4.2, §4.7), each through the adapter's own library.

Requests are `HttpRequest` effects sent through a credential's `_http`, as a flow would send them.
Certificates come from trustme (a CA and its leaf for 127.0.0.1 and localhost) and `tests.certs` (a
self-signed leaf no CA vouches for, as Service Fabric presents). Proxies are a `TrapProxy` that records
every connection, or a loopback server that answers as a proxy would.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest
import requests
import trustme

import azid_httpx
import azid_requests
import azid_trio
from azid_core import ClientSecretCredential, HttpRequest, HttpResponse, TransportError
from azid_core.transport import TlsSetting, check_pin
from tests import certs
from tests.conftest import CLIENT, SECRET, TENANT, closed_port
from tests.loopback import LoopbackServer, TrapProxy
from tests.test_adapters import _ScriptedAdapter

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.paths import Path

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
NO_PROXY_VARIABLES = ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
LEAF = certs.leaf()
PIN = hashlib.sha1(LEAF.der, usedforsecurity=False).digest()
WRONG_PIN = bytes(b ^ 0x5A for b in PIN)


def _core() -> ClientSecretCredential:
    return ClientSecretCredential(TENANT, CLIENT, SECRET, env={})


def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(200, (("Content-Type", "text/plain"),), b"ok " + request.url.encode())


@pytest.fixture
def pinned_server() -> Iterator[LoopbackServer]:
    """HTTPS with a self-signed certificate that no trust store holds."""
    with LoopbackServer(echo, certificate=(LEAF.cert_pem, LEAF.key_pem())) as server:
        yield server


@pytest.fixture
def ca_server() -> Iterator[LoopbackServer]:
    """HTTPS with a leaf of the trustme CA for 127.0.0.1 and localhost."""
    with LoopbackServer(echo) as server:
        yield server


@pytest.fixture
def trust(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Callable[[bytes], None]:
    """Make the process trust only the CA given, through each library's convention."""

    def trust_only(ca_pem: bytes) -> None:
        bundle = tmp_path / f"ca-{len(list(tmp_path.iterdir()))}.pem"
        bundle.write_bytes(ca_pem)
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))

    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    for name in (*PROXY_VARIABLES, *NO_PROXY_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    trust_only(trustme.CA().cert_pem.bytes())  # by default, a CA that signed nothing here
    return trust_only


def send(path: Path, cred: Any, request: HttpRequest) -> HttpResponse:
    response: HttpResponse = path.call(cred._http, request)
    return response


def failure(path: Path, cred: Any, request: HttpRequest) -> TransportError:
    with pytest.raises(TransportError) as caught:
        path.call(cred._http, request)
    return caught.value


def own_clients(cred: Any) -> list[Any]:
    """The clients or sessions a credential made for special requests (azid_trio has none)."""
    if isinstance(cred, azid_requests.Credential):
        return list(cred._special.values())
    if isinstance(cred, (azid_httpx.Credential, azid_httpx.AsyncCredential)):
        return [c for (setting, _), c in cred._clients.own.items() if setting is not None]
    return []


def closed(client: Any) -> bool:
    if isinstance(client, requests.Session):
        return all(not adapter.poolmanager.pools for adapter in client.adapters.values())  # type: ignore[attr-defined]
    return bool(client.is_closed)


# -- pin_sha1 (§0.1, §4.7) --


def test_the_right_pin_trusts_a_certificate_no_ca_vouches_for(
    path: Path, pinned_server: LoopbackServer, trust: Callable[[bytes], None]
) -> None:
    cred = path.credential(_core())
    url = f"{pinned_server.url}/sf?api-version=2019-07-01-preview"
    assert failure(path, cred, HttpRequest("GET", url)).kind == "tls"  # the store does not trust it
    first = send(path, cred, HttpRequest("GET", url, pin_sha1=PIN))
    second = send(path, cred, HttpRequest("GET", url, pin_sha1=PIN, tls_server_name="sf.example"))
    assert (first.status, first.body) == (200, f"ok {url}".encode())
    assert second.status == 200  # no hostname check either: the pin is the trust
    assert pinned_server.server_names[-1] == "sf.example"
    path.close(cred)


def test_a_wrong_pin_fails_before_any_request_byte(
    path: Path, pinned_server: LoopbackServer, trust: Callable[[bytes], None]
) -> None:
    cred = path.credential(_core())
    request = HttpRequest(
        "GET", f"{pinned_server.url}/sf", (("Secret", "identity-header-value"),), pin_sha1=WRONG_PIN
    )
    error = failure(path, cred, request)
    assert error.kind == "pin_mismatch"
    assert error.detail == f"127.0.0.1:{pinned_server.port}: server certificate does not match the pin"
    assert PIN.hex() not in str(error)
    assert WRONG_PIN.hex() not in str(error)
    # Twice: a second attempt opens a new connection and is refused the same way.
    assert failure(path, cred, request).kind == "pin_mismatch"
    path.close(cred)
    assert len(pinned_server.server_names) == 2  # both handshakes happened...
    assert pinned_server.requests_received == 0  # ...and not one byte followed them
    assert pinned_server.bytes_received == 0


def test_a_peer_without_a_certificate_matches_no_pin() -> None:
    with pytest.raises(TransportError, match=r"^pin_mismatch: sf:443: server certificate does not match"):
        check_pin(None, PIN, "sf:443")
    check_pin(LEAF.der, PIN, "sf:443")


def test_a_pin_needs_https(path: Path, trust: Callable[[bytes], None]) -> None:
    with LoopbackServer(echo, tls=False) as server:
        cred = path.credential(_core())
        error = failure(path, cred, HttpRequest("GET", f"{server.url}/", pin_sha1=PIN))
        path.close(cred)
        assert (error.kind, error.detail) == ("tls", f"127.0.0.1:{server.port}: pin_sha1 needs an https URL")
        assert server.bytes_received == 0


# -- tls_server_name and ca_pem (§0.1) --


def test_ca_pem_replaces_the_trust_store(
    path: Path, ca_server: LoopbackServer, trust: Callable[[bytes], None]
) -> None:
    ca_pem = LoopbackServer.ca().cert_pem.bytes()
    cred = path.credential(_core())
    url = f"{ca_server.url}/aks"
    assert failure(path, cred, HttpRequest("GET", url)).kind == "tls"  # the store trusts another CA
    assert send(path, cred, HttpRequest("GET", url, ca_pem=ca_pem)).status == 200
    path.close(cred)
    # The other way round: the store trusts the server's CA, ca_pem names another, and ca_pem wins.
    trust(ca_pem)
    cred = path.credential(_core())
    assert send(path, cred, HttpRequest("GET", url)).status == 200
    stranger = trustme.CA().cert_pem.bytes()
    assert failure(path, cred, HttpRequest("GET", url, ca_pem=stranger)).kind == "tls"
    path.close(cred)


NOT_BASE64 = b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("pem", [NOT_BASE64, "é".encode(), b""], ids=["not-base64", "not-ascii", "empty"])
def test_ca_pem_that_is_not_a_certificate_is_a_tls_failure(
    path: Path, ca_server: LoopbackServer, trust: Callable[[bytes], None], pem: bytes
) -> None:
    # The store trusts the server: only a refusal of the ca_pem makes these fail (ssl would take an
    # empty cadata for "the default store").
    trust(LoopbackServer.ca().cert_pem.bytes())
    cred = path.credential(_core())
    error = failure(path, cred, HttpRequest("GET", f"{ca_server.url}/", ca_pem=pem))
    path.close(cred)
    assert error.kind == "tls"
    if not (pem == NOT_BASE64 and path.name == "requests"):  # urllib3 loads it only when connecting
        assert error.detail == f"127.0.0.1:{ca_server.port}: ca_pem is not a valid PEM certificate"
    assert ca_server.requests_received == 0


def test_tls_server_name_is_sent_and_checked(
    path: Path, ca_server: LoopbackServer, trust: Callable[[bytes], None]
) -> None:
    ca_pem = LoopbackServer.ca().cert_pem.bytes()
    cred = path.credential(_core())
    named = HttpRequest("GET", f"{ca_server.url}/n", ca_pem=ca_pem, tls_server_name="localhost")
    assert send(path, cred, named).status == 200
    assert ca_server.server_names == ["localhost"]  # an IP address alone sends no SNI
    # The certificate names 127.0.0.1 and localhost only: the SNI name is also the name checked.
    wrong = named._replace(tls_server_name="aks.example")
    assert failure(path, cred, wrong).kind == "tls"
    assert ca_server.server_names[-1] == "aks.example"
    # With the store's trust (no ca_pem) too.
    trust(ca_pem)
    other = path.credential(_core())
    assert (
        send(path, other, HttpRequest("GET", f"{ca_server.url}/", tls_server_name="localhost")).status == 200
    )
    assert (
        failure(path, other, HttpRequest("GET", f"{ca_server.url}/", tls_server_name="x.test")).kind == "tls"
    )
    path.close(other)
    path.close(cred)
    assert ca_server.requests_received == 2


# -- bypass_proxy (§0.1, §4.2) --


@pytest.fixture
def trap(monkeypatch: pytest.MonkeyPatch, trust: Callable[[bytes], None]) -> Iterator[TrapProxy]:
    """Every proxy variable names the trap; nothing exempts loopback."""
    with TrapProxy() as trap:
        for name in PROXY_VARIABLES:
            monkeypatch.setenv(name, trap.url)
        yield trap


def test_bypass_proxy_never_reaches_the_proxy_while_other_requests_do(
    path: Path, trap: TrapProxy, trust: Callable[[bytes], None]
) -> None:
    with LoopbackServer(echo, tls=False) as imds, LoopbackServer(echo) as https_server:
        trust(LoopbackServer.ca().cert_pem.bytes())
        with LoopbackServer(echo, certificate=(LEAF.cert_pem, LEAF.key_pem())) as pinned:
            cred = path.credential(_core())
            direct = [
                HttpRequest("GET", f"{imds.url}/metadata/identity/oauth2/token", bypass_proxy=True),
                HttpRequest("GET", f"{https_server.url}/app-service", bypass_proxy=True),
                HttpRequest("GET", f"{pinned.url}/service-fabric", pin_sha1=PIN),  # a pin is never proxied
            ]
            for request in direct:
                assert send(path, cred, request).status == 200
            assert trap.connections == 0
            if path.name == "azid_trio":  # it uses no proxy at all
                assert send(path, cred, HttpRequest("GET", f"{imds.url}/plain")).status == 200
                assert trap.connections == 0
            else:  # the user's own requests still go through the proxy
                assert failure(path, cred, HttpRequest("GET", f"{imds.url}/plain")).kind in {
                    "closed",
                    "proxy",
                }
                assert trap.first_lines == [f"GET {imds.url}/plain HTTP/1.1".encode()]
                assert failure(path, cred, HttpRequest("GET", f"{https_server.url}/x")).kind in {
                    "closed",
                    "proxy",
                }
                assert trap.first_lines[1].startswith(f"CONNECT 127.0.0.1:{https_server.port} ".encode())
            path.close(cred)
        assert (imds.requests_received, https_server.requests_received) == (1 + (path.name == "azid_trio"), 1)


def test_the_users_entra_requests_use_the_proxy(
    path: Path, trust: Callable[[bytes], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def proxy_answer(request: HttpRequest) -> HttpResponse:
        seen.append(request.url)
        reply = {"access_token": "via-proxy", "expires_in": 3600, "token_type": "Bearer"}
        return HttpResponse(200, (("Content-Type", "application/json"),), json.dumps(reply).encode())

    target = f"http://127.0.0.1:{closed_port()}"  # nothing listens: only the proxy can answer
    with LoopbackServer(proxy_answer, tls=False) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        cred = path.credential(ClientSecretCredential(TENANT, CLIENT, SECRET, authority=target, env={}))
        if path.name == "azid_trio":  # no proxy: straight to the closed port
            assert failure(path, cred, HttpRequest("POST", f"{target}/t")).kind == "connect"
        else:
            assert path.get_token(cred, "https://vault.azure.net/.default").token == "via-proxy"
        path.close(cred)
    # The proxy was asked for the absolute URL of the token endpoint.
    expected = [] if path.name == "azid_trio" else [f"{target}/{TENANT}/oauth2/v2.0/token"]
    assert [url[url.index("http://", 1) :] for url in seen] == expected


# -- clients and sessions for special requests --


def test_special_clients_are_made_once_per_setting_and_closed(
    path: Path, pinned_server: LoopbackServer, ca_server: LoopbackServer, trust: Callable[[bytes], None]
) -> None:
    ca_pem = LoopbackServer.ca().cert_pem.bytes()
    cred = path.credential(_core())
    settings = [
        HttpRequest("GET", f"{pinned_server.url}/", pin_sha1=PIN),
        HttpRequest("GET", f"{ca_server.url}/", ca_pem=ca_pem),
        HttpRequest("GET", f"{ca_server.url}/", ca_pem=ca_pem, tls_server_name="localhost"),
    ]
    for request in settings * 2:
        assert send(path, cred, request).status == 200
    made = own_clients(cred)
    assert len(made) == (0 if path.name == "azid_trio" else 3)
    path.close(cred)
    assert all(closed(client) for client in made)
    assert own_clients(cred) == []


@pytest.mark.parametrize("factory", [azid_httpx.Credential, azid_httpx.AsyncCredential])
def test_httpx_clients_for_plain_http_skip_the_trust_store(factory: Any) -> None:
    # No TLS happens on an http URL: such a client gets an unverified context instead of loading
    # certifi's store (~20 ms), while https requests of the same setting keep the real trust.
    cred = factory(_core())
    clients = cred._clients
    http = clients(HttpRequest("GET", "http://127.0.0.1:1/", bypass_proxy=True))
    https = clients(HttpRequest("GET", "https://127.0.0.1:1/", bypass_proxy=True))
    assert http is not https
    assert http is clients(HttpRequest("GET", "HTTP://127.0.0.1:2/", bypass_proxy=True))
    assert clients(HttpRequest("GET", "http://127.0.0.1:1/")) is not clients(HttpRequest("GET", "https://x/"))
    setting = TlsSetting(None, None, None, True)
    assert set(clients.own) == {(setting, True), (setting, False), (None, True), (None, False)}
    closing = cred.close()
    if closing is not None:
        anyio.run(lambda: closing)
    assert clients.own == {}


def test_a_users_requests_session_is_never_used_for_special_requests(
    pinned_server: LoopbackServer, trust: Callable[[bytes], None]
) -> None:
    session = requests.Session()
    scripted = _ScriptedAdapter(failure=requests.exceptions.ConnectionError("the user's session"))
    session.mount("https://", scripted)
    adapters, proxies, verify = dict(session.adapters), dict(session.proxies), session.verify
    cred = azid_requests.Credential(_core(), session)
    assert cred._http(HttpRequest("GET", f"{pinned_server.url}/", pin_sha1=PIN)).status == 200
    with pytest.raises(TransportError, match="connect"):
        cred._http(HttpRequest("GET", f"{pinned_server.url}/plain"))
    cred.close()
    assert len(scripted.sent) == 1  # the plain request only
    assert (session.adapters, session.proxies, session.verify) == (adapters, proxies, verify)
    assert session.get_adapter("https://x") is scripted


def test_a_users_httpx_client_is_never_used_for_special_requests_and_stays_open(
    pinned_server: LoopbackServer, trust: Callable[[bytes], None]
) -> None:
    seen: list[str] = []

    def mock(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(204)

    client = httpx.Client(transport=httpx.MockTransport(mock))
    mounts, transport = dict(client._mounts), client._transport
    with azid_httpx.Credential(_core(), client) as cred:
        assert cred._http(HttpRequest("GET", f"{pinned_server.url}/", pin_sha1=PIN)).status == 200
        assert cred._http(HttpRequest("GET", f"{pinned_server.url}/plain")).status == 204
    assert seen == [f"{pinned_server.url}/plain"]
    assert not client.is_closed
    assert (dict(client._mounts), client._transport) == (mounts, transport)
    client.close()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_users_httpx_async_client_is_never_used_for_special_requests_and_stays_open(
    backend: str, pinned_server: LoopbackServer, trust: Callable[[bytes], None]
) -> None:
    seen: list[str] = []

    def mock(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(204)

    async def scenario() -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(mock))
        mounts, transport = dict(client._mounts), client._transport
        async with azid_httpx.AsyncCredential(_core(), client) as cred:
            pinned = await cred._http(HttpRequest("GET", f"{pinned_server.url}/", pin_sha1=PIN))
            plain = await cred._http(HttpRequest("GET", f"{pinned_server.url}/plain"))
            assert (pinned.status, plain.status) == (200, 204)
        assert not client.is_closed
        assert (dict(client._mounts), client._transport) == (mounts, transport)
        await client.aclose()

    anyio.run(scenario, backend=backend)
    assert seen == [f"{pinned_server.url}/plain"]


def test_azid_trio_has_no_proxy_to_bypass(pinned_server: LoopbackServer, trap: TrapProxy) -> None:
    async def scenario() -> int:
        async with azid_trio.Credential(_core()) as cred:
            response = await cred._http(
                HttpRequest("GET", f"{pinned_server.url}/", pin_sha1=PIN, bypass_proxy=True)
            )
            return response.status

    assert anyio.run(scenario, backend="trio") == 200
    assert trap.connections == 0
