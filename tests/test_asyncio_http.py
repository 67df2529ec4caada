"""`azid_httpx.native.AsyncioHttp`, the h11 engine on asyncio transports, against loopback servers;
and when `azid_httpx.AsyncCredential` uses it rather than httpx.

The engine's framing, pooling and failure kinds are covered through trio in `test_trio_http.py`;
these tests cover what asyncio adds: TCP and TLS set-up, TLS options, and how a peer's close, EOF
or reset reaches the engine."""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx
import pytest
import trustme

import azid_httpx
from azid_core import ClientSecretCredential, HttpRequest, HttpResponse, TransportError
from azid_httpx.native import AsyncioHttp
from tests.conftest import CLIENT, SECRET, TENANT, RawServer, closed_port
from tests.loopback import LoopbackServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

SCOPE = "https://vault.azure.net/.default"


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse(200, (("Content-Type", "text/plain"),), b"ok:" + request.url.encode())


@pytest.fixture
def tls_server() -> Iterator[LoopbackServer]:
    with LoopbackServer(ok) as server:
        yield server


def leaf_sha1(server: LoopbackServer) -> bytes:
    pem = ssl.get_server_certificate(("127.0.0.1", server.port))
    return hashlib.sha1(ssl.PEM_cert_to_DER_cert(pem)).digest()


async def failure(http: AsyncioHttp, request: HttpRequest) -> TransportError:
    with pytest.raises(TransportError) as caught:
        await http(request)
    return caught.value


def test_tls_with_a_trusting_context_reuses_the_connection(tls_server: LoopbackServer) -> None:
    async def main() -> None:
        http = AsyncioHttp(tls_server.client_context())
        first = await http(HttpRequest("GET", f"{tls_server.url}/a"))
        second = await http(HttpRequest("GET", f"{tls_server.url}/b"))
        assert len(http._idle[next(iter(http._idle))]) == 1  # one connection, back in the pool
        await http.aclose()
        assert (first.status, second.status) == (200, 200)
        assert (first.body[-2:], second.body[-2:]) == (b"/a", b"/b")

    asyncio.run(main())


def test_an_unknown_ca_is_a_tls_failure(tls_server: LoopbackServer) -> None:
    async def main() -> None:
        stranger = ssl.create_default_context(cadata=trustme.CA().cert_pem.bytes().decode())
        error = await failure(AsyncioHttp(stranger), HttpRequest("GET", f"{tls_server.url}/"))
        assert (error.kind, error.detail) == ("tls", f"127.0.0.1:{tls_server.port}: TLS handshake failed")
        assert isinstance(error.__cause__, ssl.SSLCertVerificationError)

    asyncio.run(main())


def test_ca_pem_and_tls_server_name(tls_server: LoopbackServer) -> None:
    async def main() -> None:
        http = AsyncioHttp(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))  # trusts nothing by itself
        pem = LoopbackServer.ca().cert_pem.bytes()
        named = await http(HttpRequest("GET", f"{tls_server.url}/n", ca_pem=pem, tls_server_name="localhost"))
        assert named.status == 200
        # The certificate names 127.0.0.1 and localhost only.
        wrong = HttpRequest("GET", f"{tls_server.url}/", ca_pem=pem, tls_server_name="example.test")
        error = await failure(http, wrong)
        await http.aclose()
        assert error.kind == "tls"

    asyncio.run(main())


def test_right_pin_skips_ca_checks_and_wrong_pin_sends_nothing(tls_server: LoopbackServer) -> None:
    pin = leaf_sha1(tls_server)

    async def main() -> None:
        http = AsyncioHttp(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
        response = await http(HttpRequest("GET", f"{tls_server.url}/p", pin_sha1=pin))
        wrong = bytes(b ^ 1 for b in pin)
        error = await failure(http, HttpRequest("POST", f"{tls_server.url}/", pin_sha1=wrong, body=b"secret"))
        await http.aclose()
        assert response.body.endswith(b"/p")
        assert error.kind == "pin_mismatch"

    asyncio.run(main())


def test_refused_port_is_connect() -> None:
    port = closed_port()

    async def main() -> None:
        error = await failure(AsyncioHttp(), HttpRequest("GET", f"http://127.0.0.1:{port}/"))
        assert (error.kind, error.detail) == ("connect", f"127.0.0.1:{port}: could not connect")

    asyncio.run(main())


def test_a_reset_after_the_request_is_closed() -> None:
    async def main(url: str) -> None:
        error = await failure(AsyncioHttp(), HttpRequest("GET", f"{url}/"))
        assert (error.kind, error.detail.split(": ", 1)[1]) == (
            "closed",
            "connection reset or closed by peer",
        )

    with RawServer("reset") as raw:
        asyncio.run(main(raw.url))


@asynccontextmanager
async def serving(
    script: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A loopback server on this loop that runs `script` for each connection; yields its URL."""
    async with await asyncio.start_server(script, "127.0.0.1", 0) as server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def test_eof_before_the_response_ends_is_closed() -> None:
    async def half_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        writer.close()

    async def main() -> None:
        async with serving(half_answer) as url:
            error = await failure(AsyncioHttp(), HttpRequest("GET", f"{url}/"))
        assert error.kind == "closed"
        assert error.detail.endswith("peer closed the connection before the response ended")

    asyncio.run(main())


def test_a_pooled_connection_the_server_closed_is_replaced() -> None:
    connections: list[int] = []

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # keep-alive was not refused, yet the server hangs up while the client idles

    async def main() -> None:
        async with serving(answer_once) as url:
            http = AsyncioHttp()
            first = await http(HttpRequest("GET", f"{url}/"))
            (pooled,) = next(iter(http._idle.values()))
            for _ in range(10_000):  # let the loop run until the server's FIN reaches the idle connection
                if pooled.stream._eof:
                    break
                await asyncio.sleep(0)
            assert pooled.stream._eof
            second = await http(HttpRequest("GET", f"{url}/"))
            await http.aclose()
        assert (first.body, second.body) == (b"ok", b"ok")
        assert len(connections) == 2

    asyncio.run(main())


def _proxy_token(request: HttpRequest) -> HttpResponse:
    reply = {"access_token": "via-proxy", "expires_in": 3600, "token_type": "Bearer"}
    return HttpResponse(200, (("Content-Type", "application/json"),), json.dumps(reply).encode())


def test_a_proxy_in_the_environment_sends_through_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def proxy(request: HttpRequest) -> HttpResponse:
        seen.append(request.url)
        return _proxy_token(request)

    target = f"http://127.0.0.1:{closed_port()}"  # nothing listens: only the proxy can answer
    with LoopbackServer(proxy, tls=False) as server:
        for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", server.url)

        async def main() -> None:
            core = ClientSecretCredential(TENANT, CLIENT, SECRET, authority=target)
            cred = azid_httpx.AsyncCredential(core)
            assert isinstance(cred._client, httpx.AsyncClient)
            token = await cred.get_token(SCOPE)
            await cred.close()
            assert token.token == "via-proxy"
            assert cred._client.is_closed  # its own client, so closed with it

        asyncio.run(main())
    # httpx asked the proxy for the absolute URL of the token endpoint.
    assert [url[url.index("http://", 1) :] for url in seen] == [f"{target}/{TENANT}/oauth2/v2.0/token"]


def test_without_a_proxy_the_own_engine_is_used_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # names hosts to reach directly, not a proxy
    with LoopbackServer(_proxy_token, tls=False) as server:

        async def main() -> None:
            core = ClientSecretCredential(TENANT, CLIENT, SECRET, authority=server.url)
            cred = azid_httpx.AsyncCredential(core)
            assert (await cred.get_token(SCOPE)).token == "via-proxy"
            assert isinstance(cred._engine, AsyncioHttp)
            assert len(cred._engine._idle) == 1
            await cred.close()
            assert cred._engine._idle == {}

        asyncio.run(main())
