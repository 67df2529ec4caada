"""azid over `httpx`: `Credential` (sync) and `AsyncCredential` (anyio: asyncio and trio).

>>> cred = azid_httpx.AsyncCredential(ClientSecretCredential(tenant_id, client_id, secret))
>>> await cred.get_token("https://vault.azure.net/.default")

This module only moves bytes: it turns an `HttpRequest` into `httpx.Request`, sends it without the
client's default headers, and maps httpx's exceptions to `TransportError`. Trust and proxies follow
the client (by default SSL_CERT_FILE and HTTP(S)_PROXY, httpx's conventions).

`AsyncCredential` given no client, with no proxy in the environment, skips httpx's async stack, which
alone costs ~1.5x a bare stdlib POST for a cold token (`python -m benchmarks.cold_token`): it speaks
HTTP/1.1 with azid's h11 engine on the running loop's own streams (`azid_httpx.native` on asyncio,
`azid_trio.TrioHttp` on trio), trusting what httpx would (`httpx.create_ssl_context()`).
"""

from __future__ import annotations

import ssl
import sys
import time
import urllib.request
from typing import TYPE_CHECKING

import anyio
import httpx

from azid_core.effects import HttpRequest, HttpResponse
from azid_core.errors import TransportError
from azid_core.frontend import AsyncCredentialBase, CredentialBase
from azid_core.transport import BodyBuffer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from typing import Any

    from azid_core.acquire import TokenSource
    from azid_core.effects import Waitable
    from azid_trio.h11_engine import H11Http

__all__ = ["AsyncCredential", "Credential"]


def _caused_by_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def transport_error(exc: httpx.HTTPError) -> TransportError:
    """The azid failure kind of an httpx exception."""
    if isinstance(exc, httpx.ProxyError):
        kind = "proxy"
    elif _caused_by_tls(exc):
        kind = "tls"
    elif isinstance(exc, (httpx.ConnectTimeout, httpx.ConnectError, httpx.UnsupportedProtocol)):
        kind = "connect"  # nothing was sent
    elif isinstance(exc, httpx.TimeoutException):
        kind = "timeout"
    else:
        kind = "closed"  # ReadError, WriteError, RemoteProtocolError, DecodingError, ...
    return TransportError(kind, f"{type(exc).__name__}: {exc}")


class _Body(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A request body sent as one chunk.

    Not httpx's own `ByteStream`: its `__aiter__` is an async generator, which httpcore abandons
    when the peer resets mid-send, and trio then warns about an unfinalized generator.
    """

    def __init__(self, data: bytes) -> None:
        self._chunks = (data,) if data else ()

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _Chunks(self._chunks)


class _Chunks:
    def __init__(self, chunks: tuple[bytes, ...]) -> None:
        self._pending = list(chunks)

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        if not self._pending:
            raise StopAsyncIteration
        return self._pending.pop()


def to_httpx(request: HttpRequest) -> httpx.Request:
    """The httpx request for an effect: its headers, plus Host and Content-Length."""
    for field in ("bypass_proxy", "pin_sha1", "tls_server_name", "ca_pem"):
        if getattr(request, field):
            raise TransportError("tls", f"azid_httpx does not support {field} yet")
    timeout = httpx.Timeout(request.timeout, connect=request.connect_timeout or request.timeout)
    url = httpx.URL(request.url)
    headers = [("Host", url.netloc.decode("ascii")), *request.headers]
    if request.body or request.method in {"POST", "PUT"}:
        headers.append(("Content-Length", str(len(request.body))))
    # With `stream=`, httpx adds neither Host nor Content-Length: both are set above.
    return httpx.Request(
        request.method,
        url,
        headers=headers,
        stream=_Body(request.body),
        extensions={"timeout": timeout.as_dict()},
    )


def from_httpx(response: httpx.Response, body: bytes) -> HttpResponse:
    return HttpResponse(response.status_code, tuple(response.headers.items()), body)


class Credential(CredentialBase):
    """A sync azure-core credential; `client` is used as given and left open by `close()`."""

    def __init__(
        self,
        core: TokenSource,
        client: httpx.Client | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(core, clock=clock)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client()

    def _http(self, request: HttpRequest) -> HttpResponse:
        deadline = time.monotonic() + request.timeout
        try:
            response = self._client.send(to_httpx(request), stream=True, follow_redirects=False)
            try:
                body = BodyBuffer(request.max_response_bytes)
                body.expect(response.headers.get("content-length"))
                for chunk in response.iter_bytes():
                    body.add(chunk)
                    if time.monotonic() > deadline:
                        raise TransportError("timeout", f"no complete response within {request.timeout} s")
            finally:
                response.close()
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        return from_httpx(response, body.getvalue())

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


# getproxies_environment() also reports NO_PROXY, as "no", which names no proxy to use.
_PROXY_SCHEMES = frozenset({"http", "https", "all"})


def _running_under_trio() -> bool:
    trio = sys.modules.get("trio")  # not imported: not running
    try:
        return trio is not None and trio.lowlevel.current_task() is not None
    except RuntimeError:  # imported, but this is not a trio thread
        return False


def _own_engine() -> H11Http[Any]:
    """azid's HTTP/1.1 engine for the running loop, with httpx's default trust."""
    context = httpx.create_ssl_context()
    if _running_under_trio():
        from azid_trio import TrioHttp

        return TrioHttp(context)
    from .native import AsyncioHttp

    return AsyncioHttp(context)


class AsyncCredential(AsyncCredentialBase):
    """An async azure-core credential on anyio (asyncio or trio); `client` is left open by `close()`.

    With no `client`, requests go through azid's own HTTP/1.1 engine for the running loop (the module
    docstring says why), unless the environment names a proxy (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY):
    then through an `httpx.AsyncClient` of its own, which applies it. The engine's connections belong
    to the event loop that opened them.
    """

    def __init__(
        self,
        core: TokenSource,
        client: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(core, clock=clock)
        self._owns_client = client is None
        if client is None and _PROXY_SCHEMES & urllib.request.getproxies_environment().keys():
            client = httpx.AsyncClient()
        self._client = client
        self._engine: H11Http[Any] | None = None

    def _new_event(self) -> Waitable:
        return anyio.Event()

    async def _sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def _http(self, request: HttpRequest) -> HttpResponse:
        if self._client is not None:
            return await self._through_httpx(self._client, request)
        if self._engine is None:
            self._engine = _own_engine()
        return await self._engine(request)

    async def _through_httpx(self, client: httpx.AsyncClient, request: HttpRequest) -> HttpResponse:
        try:
            with anyio.fail_after(request.timeout):
                response = await client.send(to_httpx(request), stream=True, follow_redirects=False)
                try:
                    body = BodyBuffer(request.max_response_bytes)
                    body.expect(response.headers.get("content-length"))
                    async for chunk in response.aiter_bytes():
                        body.add(chunk)
                finally:
                    await response.aclose()
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        except TimeoutError as exc:
            raise TransportError("timeout", f"no complete response within {request.timeout} s") from exc
        return from_httpx(response, body.getvalue())

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.aclose()
        if self._owns_client and self._client is not None:
            await self._client.aclose()
