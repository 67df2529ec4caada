"""Adapter contracts without sockets: httpx through `httpx.MockTransport`, requests through a
`BaseAdapter` mounted on a `Session`. Each library's failures map to the right transport kind, a
client or session passed in stays open, and one the adapter made is closed."""

from __future__ import annotations

import io
import ssl
import time
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest
import requests
import requests.adapters
from urllib3.exceptions import NewConnectionError, ProtocolError, ReadTimeoutError
from urllib3.util import SKIP_HEADER

import azid_httpx
import azid_requests
from azid_core import ClientSecretCredential, CredentialUnavailableError, HttpRequest, TransportError
from azid_core.testing import EntraEmulator
from tests.conftest import CLIENT, SECRET, TENANT, FakeClock
from tests.paths import SleeplessAsyncHttpx, SleeplessHttpx, SleeplessRequests

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

AUTHORITY = "https://login.test"
SCOPE = "https://vault.azure.net/.default"


def _core() -> ClientSecretCredential:
    return ClientSecretCredential(TENANT, CLIENT, SECRET, authority=AUTHORITY, env={})


def _emulator() -> EntraEmulator:
    emulator = EntraEmulator(clock=FakeClock())
    emulator.add_app(TENANT, CLIENT, SECRET)
    return emulator


# -- httpx --


def _emulated(emulator: EntraEmulator) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        reply = emulator(
            HttpRequest(request.method, str(request.url), tuple(request.headers.items()), request.read())
        )
        return httpx.Response(reply.status, headers=list(reply.headers), content=reply.body)

    return handle


def _tls_failure(request: httpx.Request) -> httpx.Response:
    try:
        raise ssl.SSLCertVerificationError("certificate verify failed")
    except ssl.SSLError as exc:
        raise httpx.ConnectError("handshake failed", request=request) from exc


HTTPX_FAILURES: list[tuple[str, Callable[[httpx.Request], Any], str]] = [
    ("connect", lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)), "connect"),
    ("connect-timeout", lambda r: (_ for _ in ()).throw(httpx.ConnectTimeout("slow", request=r)), "connect"),
    ("read-timeout", lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=r)), "timeout"),
    ("reset", lambda r: (_ for _ in ()).throw(httpx.ReadError("reset", request=r)), "closed"),
    ("garbage", lambda r: (_ for _ in ()).throw(httpx.RemoteProtocolError("bad", request=r)), "closed"),
    ("proxy", lambda r: (_ for _ in ()).throw(httpx.ProxyError("407", request=r)), "proxy"),
    ("tls", _tls_failure, "tls"),
]


@pytest.mark.parametrize(("name", "handler", "kind"), HTTPX_FAILURES, ids=[f[0] for f in HTTPX_FAILURES])
def test_httpx_failures_map_to_transport_kinds(
    name: str, handler: Callable[[httpx.Request], Any], kind: str
) -> None:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    cred = SleeplessHttpx(_core(), client)
    cred.slept = []
    with pytest.raises(CredentialUnavailableError, match=rf"\({kind}\)") as caught:
        cred.get_token(SCOPE)
    assert isinstance(caught.value.__cause__, TransportError)
    assert caught.value.__cause__.kind == kind
    assert cred.slept == ([0.0, 1.6, 3.2] if kind == "connect" else [])
    client.close()


@pytest.mark.parametrize(("name", "handler", "kind"), HTTPX_FAILURES, ids=[f[0] for f in HTTPX_FAILURES])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_httpx_async_failures_map_to_transport_kinds(
    name: str, handler: Callable[[httpx.Request], Any], kind: str, backend: str
) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            cred = SleeplessAsyncHttpx(_core(), client)
            cred.slept = []
            with pytest.raises(CredentialUnavailableError) as caught:
                await cred.get_token(SCOPE)
            assert isinstance(caught.value.__cause__, TransportError)
            assert caught.value.__cause__.kind == kind

    anyio.run(scenario, backend=backend)


def test_httpx_client_passed_in_stays_open_and_ours_is_closed() -> None:
    emulator = _emulator()
    client = httpx.Client(transport=httpx.MockTransport(_emulated(emulator)))
    with azid_httpx.Credential(_core(), client) as cred:
        assert cred.get_token(SCOPE).token
    assert not client.is_closed
    assert cred._clients.own == {}  # plain requests went through the given client
    client.close()
    ours = azid_httpx.Credential(_core())
    assert ours._clients.own == {}  # made on first use, not by the constructor
    own = ours._clients(HttpRequest("GET", "https://login.test/"))
    ours.close()
    assert own.is_closed
    assert ours._clients.own == {}


def test_httpx_async_context_manager_closes_only_its_own_client() -> None:
    emulator = _emulator()

    async def scenario() -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(_emulated(emulator)))
        async with azid_httpx.AsyncCredential(_core(), client) as cred:
            assert (await cred.get_token(SCOPE)).token
        assert not client.is_closed
        await client.aclose()
        async with azid_httpx.AsyncCredential(_core()) as ours:
            own = ours._clients(HttpRequest("GET", "https://login.test/"))
            assert isinstance(own, httpx.AsyncClient)  # no client given: an httpx client of its own
        assert own.is_closed

    anyio.run(scenario)


def test_httpx_puts_sni_and_the_pin_check_in_request_extensions() -> None:
    request = azid_httpx.to_httpx(
        HttpRequest("GET", "https://login.test/", tls_server_name="proxy.aks", pin_sha1=b"\x00" * 20)
    )
    assert request.extensions["sni_hostname"] == "proxy.aks"
    trace = request.extensions["trace"]
    trace("connection.connect_tcp.complete", {"return_value": None})  # other events are not its business
    plain = azid_httpx.to_httpx(HttpRequest("GET", "https://login.test/"))
    assert set(plain.extensions) == {"timeout"}


def test_httpx_get_has_no_content_length_and_the_body_iterates_once() -> None:
    request = azid_httpx.to_httpx(HttpRequest("GET", "https://login.test/x"))
    assert list(request.headers.items()) == [("host", "login.test")]
    chunks = azid_httpx._Body(b"abc").__aiter__()
    assert chunks.__aiter__() is chunks

    async def drain() -> list[bytes]:
        return [chunk async for chunk in chunks]

    assert anyio.run(drain) == [b"abc"]


def _slow_body(chunks: int, pause: float) -> Iterator[bytes]:
    for _ in range(chunks):
        time.sleep(pause)  # the server is slow; the client's deadline is what is tested
        yield b"{}"


def test_sync_adapters_stop_reading_at_the_deadline() -> None:
    request = HttpRequest("GET", "https://login.test/slow", timeout=0.1)
    client = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=_slow_body(5, 0.06)))
    )
    with pytest.raises(TransportError, match=r"timeout: no complete response within 0\.1 s"):
        azid_httpx.Credential(_core(), client)._http(request)
    client.close()

    class SlowAdapter(_ScriptedAdapter):
        def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
            response = requests.Response()
            response.status_code = 200
            response.raw = io.BufferedReader(_SlowRaw(5, 0.06))
            return response

    session = requests.Session()
    session.mount("https://", SlowAdapter())
    with pytest.raises(TransportError, match=r"timeout: no complete response within 0\.1 s"):
        azid_requests.Credential(_core(), session)._http(request)


class _SlowRaw(io.RawIOBase):
    def __init__(self, chunks: int, pause: float) -> None:
        self._chunks = _slow_body(chunks, pause)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = next(self._chunks, b"")
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_httpx_sends_the_effects_headers_and_body_only() -> None:
    request = azid_httpx.to_httpx(
        HttpRequest("POST", "https://login.test:8443/t/x?a=1", (("Accept", "x/y"),), b"k=v")
    )
    assert list(request.headers.items()) == [
        ("host", "login.test:8443"),
        ("accept", "x/y"),
        ("content-length", "3"),
    ]
    assert request.read() == b"k=v"


# -- requests --


class _ScriptedAdapter(requests.adapters.BaseAdapter):
    """A transport for `requests.Session`: raises the scripted exception, or answers via the emulator."""

    def __init__(self, failure: BaseException | None = None, emulator: EntraEmulator | None = None) -> None:
        super().__init__()
        self.failure = failure
        self.emulator = emulator
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        if self.failure is not None:
            raise self.failure
        assert self.emulator is not None
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        reply = self.emulator(
            HttpRequest(request.method or "", request.url or "", tuple(request.headers.items()), body)
        )
        response = requests.Response()
        response.status_code = reply.status
        response.headers.update(dict(reply.headers))
        response._content = reply.body
        response._content_consumed = True  # type: ignore[attr-defined]  # the body is in memory, no raw stream
        response.url = request.url or ""
        return response

    def close(self) -> None:
        """Nothing to release."""


REQUESTS_FAILURES: list[tuple[str, BaseException, str]] = [
    ("refused", requests.ConnectionError(NewConnectionError(None, "refused")), "connect"),  # type: ignore[arg-type]
    ("connect-timeout", requests.exceptions.ConnectTimeout("slow"), "connect"),
    ("read-timeout", requests.exceptions.ReadTimeout("slow"), "timeout"),
    ("read-timeout-in-body", requests.ConnectionError(ReadTimeoutError(None, "/", "slow")), "timeout"),  # type: ignore[arg-type]
    ("tls", requests.exceptions.SSLError("verify failed"), "tls"),
    ("proxy", requests.exceptions.ProxyError("407"), "proxy"),
    (
        "reset",
        requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError())),
        "closed",
    ),
    ("chunked", requests.exceptions.ChunkedEncodingError("truncated"), "closed"),
    ("bad-url", requests.exceptions.InvalidURL("no host"), "connect"),
    ("other", requests.exceptions.RetryError("gave up"), "closed"),
]


@pytest.mark.parametrize(
    ("name", "failure", "kind"), REQUESTS_FAILURES, ids=[f[0] for f in REQUESTS_FAILURES]
)
def test_requests_failures_map_to_transport_kinds(name: str, failure: BaseException, kind: str) -> None:
    session = requests.Session()
    adapter = _ScriptedAdapter(failure)
    session.mount("https://", adapter)
    cred = SleeplessRequests(_core(), session)
    cred.slept = []
    with pytest.raises(CredentialUnavailableError, match=rf"\({kind}\)") as caught:
        cred.get_token(SCOPE)
    assert isinstance(caught.value.__cause__, TransportError)
    assert caught.value.__cause__.kind == kind
    assert len(adapter.sent) == (4 if kind == "connect" else 1)
    session.close()


def test_requests_sends_no_session_defaults_and_keeps_a_session_passed_in() -> None:
    session = requests.Session()
    session.headers["X-Session-Default"] = "1"
    adapter = _ScriptedAdapter(emulator=_emulator())
    session.mount("https://", adapter)
    with azid_requests.Credential(_core(), session) as cred:
        assert cred.get_token(SCOPE).token
    names = {name.lower() for name in adapter.sent[0].headers}
    assert "x-session-default" not in names
    assert "accept-encoding" in names  # as urllib3's skip marker, so http.client adds nothing
    assert adapter.sent[0].headers["Accept-Encoding"] == SKIP_HEADER
    assert adapter.sent[0].headers["User-Agent"].startswith("azid/")
    assert session.get_adapter("https://login.test") is adapter  # still open and usable


def test_requests_keeps_an_accept_encoding_the_flow_chose() -> None:
    session = requests.Session()
    adapter = _ScriptedAdapter(emulator=_emulator())
    session.mount("https://", adapter)
    azid_requests.Credential(_core(), session)._http(
        HttpRequest("GET", "https://login.test/x", (("Accept-Encoding", "identity"),))
    )
    assert adapter.sent[0].headers["Accept-Encoding"] == "identity"


def test_azid_trio_loads_its_names_on_first_use() -> None:
    import azid_trio
    import azid_trio.credential
    import azid_trio.http

    assert azid_trio.Credential is azid_trio.credential.Credential
    assert azid_trio.TrioHttp is azid_trio.http.TrioHttp
    with pytest.raises(AttributeError, match="no attribute 'H11Http'"):
        azid_trio.H11Http  # noqa: B018
