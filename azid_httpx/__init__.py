"""azid over `httpx`: `Credential` (sync) and `AsyncCredential` (anyio: asyncio and trio).

>>> cred = azid_httpx.AsyncCredential(ClientSecretCredential(tenant_id, client_id, secret))
>>> await cred.get_token("https://vault.azure.net/.default")

This module only moves bytes: it turns an `HttpRequest` into `httpx.Request`, sends it through httpx
without the client's default headers, and maps httpx's exceptions to `TransportError`. Every request
goes through httpx: the client given (used as given, never modified, left open), else one of the
credential's own. Trust and proxies follow the client (by default SSL_CERT_FILE and HTTP(S)_PROXY,
httpx's conventions).

A request with `pin_sha1`, `tls_server_name`, `ca_pem` or `bypass_proxy` (PROTOCOL.md §0.1) goes
through a client the credential keeps for that setting, made on first use and closed by `close()`,
never through a given client: an `SSLContext` from `cadata` for `ca_pem`, `trust_env=False` (no proxy)
for `bypass_proxy` and pins, the `sni_hostname` request extension for `tls_server_name`, and for a pin
no CA or hostname check but httpx's `trace` extension, which sees the TLS stream once the handshake is
done and before the request is written: a leaf whose SHA-1 is not the pin closes the stream and fails
the request with `pin_mismatch`, so not one request byte is sent.

`AsyncCredential` runs developer tools with `anyio.open_process` (PROTOCOL.md §0.1 "Processes"): both
output streams read up to their cap inside one `anyio.fail_after`; on timeout, overflow or
cancellation the child's whole process group is killed and reaped.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio
import httpx

from azid_core import blocking
from azid_core.effects import CommandResult, HttpRequest, HttpResponse
from azid_core.errors import TransportError
from azid_core.frontend import AsyncCredentialBase, CredentialBase
from azid_core.transport import BodyBuffer, TlsSetting, check_pin, pem_text

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
    from typing import Any

    from anyio.abc import ByteReceiveStream

    from azid_core.acquire import TokenSource
    from azid_core.effects import RunCommand, Waitable

__all__ = ["AsyncCredential", "Credential"]

# httpcore's trace event once a connection's TLS handshake is done, before any request byte is written
# (https://www.python-httpx.org/advanced/extensions/#trace); its "return_value" is the TLS stream.
_HANDSHAKE_DONE = "connection.start_tls.complete"


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


def _client_options(tls: TlsSetting | None, where: str, *, plain_http: bool) -> dict[str, Any]:
    """`httpx.Client` / `httpx.AsyncClient` keywords for one TLS setting, for http or https URLs."""
    verify: ssl.SSLContext
    if plain_http:
        # Such a client never makes a TLS handshake: skip loading a trust store, which costs ~20 ms
        # (certifi's) and would double a managed-identity token's cold cost.
        verify = httpx.create_ssl_context(verify=False)
    elif tls is not None and tls.pin_sha1 is not None:
        verify = httpx.create_ssl_context(verify=False)  # the pin is the trust (§0.1)
    elif tls is not None and tls.ca_pem is not None:
        try:
            verify = ssl.create_default_context(cadata=pem_text(tls.ca_pem, where))
        except ssl.SSLError as exc:
            raise TransportError("tls", f"{where}: ca_pem is not a valid PEM certificate") from exc
    else:
        # httpx's own default trust (SSL_CERT_FILE included), which trust_env=False would drop.
        verify = httpx.create_ssl_context()
    # trust_env=False: no proxy from HTTP(S)_PROXY (nor NO_PROXY, nor .netrc).
    return {"verify": verify, "trust_env": tls is None or not tls.direct}


def _peer_certificate(stream: Any) -> bytes | None:
    der: bytes | None = stream.get_extra_info("ssl_object").getpeercert(True)
    return der


def _pin_check(pin: bytes, where: str) -> Callable[[str, dict[str, Any]], None]:
    """A sync `trace` callback that fails the connection, closed, when its leaf is not the pin."""

    def trace(event: str, info: dict[str, Any]) -> None:
        if event == _HANDSHAKE_DONE:
            stream = info["return_value"]
            try:
                check_pin(_peer_certificate(stream), pin, where)
            except TransportError:
                stream.close()
                raise

    return trace


def _async_pin_check(pin: bytes, where: str) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """`_pin_check` for an `httpx.AsyncClient`, whose trace callbacks are awaited."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event == _HANDSHAKE_DONE:
            stream = info["return_value"]
            try:
                check_pin(_peer_certificate(stream), pin, where)
            except TransportError:
                await stream.aclose()
                raise

    return trace


def to_httpx(request: HttpRequest, *, asynchronous: bool = False) -> httpx.Request:
    """The httpx request for an effect: its headers, plus Host and Content-Length, and the
    extensions for its timeout, `tls_server_name` and `pin_sha1` (for an AsyncClient if
    `asynchronous`)."""
    url = httpx.URL(request.url)
    where = url.netloc.decode("ascii")
    timeout = httpx.Timeout(request.timeout, connect=request.connect_timeout or request.timeout)
    extensions: dict[str, Any] = {"timeout": timeout.as_dict()}
    if request.tls_server_name is not None:
        extensions["sni_hostname"] = request.tls_server_name  # httpx checks the certificate against it
    if request.pin_sha1 is not None:
        if url.scheme != "https":
            # A pin over plain TCP would silently check nothing.
            raise TransportError("tls", f"{where}: pin_sha1 needs an https URL")
        check = _async_pin_check if asynchronous else _pin_check
        extensions["trace"] = check(request.pin_sha1, where)
    headers = [("Host", where), *request.headers]
    if request.body or request.method in {"POST", "PUT"}:
        headers.append(("Content-Length", str(len(request.body))))
    # With `stream=`, httpx adds neither Host nor Content-Length: both are set above.
    return httpx.Request(
        request.method, url, headers=headers, stream=_Body(request.body), extensions=extensions
    )


def from_httpx(response: httpx.Response, body: bytes) -> HttpResponse:
    return HttpResponse(response.status_code, tuple(response.headers.items()), body)


async def _drain(stream: ByteReceiveStream, into: bytearray, limit: int, scope: anyio.CancelScope) -> None:
    """Read a child's output to its end, or to one byte over `limit`, which cancels `scope`."""
    try:
        while len(into) <= limit:
            into += await stream.receive(min(limit + 1 - len(into), 1 << 16))
    except anyio.EndOfStream:
        return
    scope.cancel()


C = TypeVar("C", httpx.Client, httpx.AsyncClient)


class _Clients(Generic[C]):
    """The client for each request: the given one for plain requests, else one of the credential's own,
    one per (`TlsSetting` (None: plain), plain http or not), made on first use. Only its own are ever
    closed."""

    def __init__(self, make: Callable[..., C], given: C | None) -> None:
        self._make: Callable[..., C] = make
        self._given: C | None = given
        self._lock = threading.Lock()  # sync credentials are shared by threads; made once per setting
        self.own: dict[tuple[TlsSetting | None, bool], C] = {}

    def __call__(self, request: HttpRequest) -> C:
        tls = TlsSetting.of(request)
        if tls is None and self._given is not None:
            return self._given
        key = (tls, request.url[:7].lower() == "http://")
        with self._lock:
            client = self.own.get(key)
            if client is None:
                if key == (None, False):
                    client = self._make()
                else:
                    where = httpx.URL(request.url).netloc.decode("ascii")
                    client = self._make(**_client_options(tls, where, plain_http=key[1]))
                self.own[key] = client
        return client

    def take_own(self) -> list[C]:
        with self._lock:
            own, self.own = self.own, {}
        return list(own.values())


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
        self._clients = _Clients(httpx.Client, client)

    def _http(self, request: HttpRequest) -> HttpResponse:
        deadline = time.monotonic() + request.timeout
        client = self._clients(request)
        try:
            response = client.send(to_httpx(request), stream=True, follow_redirects=False)
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
        for client in self._clients.take_own():
            client.close()


class AsyncCredential(AsyncCredentialBase):
    """An async azure-core credential on anyio (asyncio or trio), sending through httpx.

    `client` is used as given and left open by `close()`; without one, an `httpx.AsyncClient` of the
    credential's own carries the requests. Its connections belong to the event loop that opened them.
    """

    def __init__(
        self,
        core: TokenSource,
        client: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(core, clock=clock)
        self._clients = _Clients(httpx.AsyncClient, client)

    def _new_event(self) -> Waitable:
        return anyio.Event()

    async def _sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def _http(self, request: HttpRequest) -> HttpResponse:
        client = self._clients(request)
        # A bare cancel scope rather than `anyio.fail_after`, its wrapper: a few microseconds less.
        with anyio.CancelScope(deadline=anyio.current_time() + request.timeout):
            try:
                httpx_request = to_httpx(request, asynchronous=True)
                response = await client.send(httpx_request, stream=True, follow_redirects=False)
                try:
                    body = BodyBuffer(request.max_response_bytes)
                    body.expect(response.headers.get("content-length"))
                    async for chunk in response.aiter_bytes():
                        body.add(chunk)
                finally:
                    await response.aclose()
            except httpx.HTTPError as exc:
                raise transport_error(exc) from exc
            return from_httpx(response, body.getvalue())
        # Only the scope's deadline gets here: it cancelled the exchange.
        raise TransportError("timeout", f"no complete response within {request.timeout} s")

    async def _run(self, command: RunCommand) -> CommandResult:
        line = blocking.command_line(command)
        try:
            process = await anyio.open_process(
                line.argv,
                stdin=subprocess.DEVNULL,
                cwd=line.cwd,
                env=line.env,
                **line.group,
            )
        except OSError as exc:
            raise blocking.spawn_failure(line.argv[0], exc) from exc
        assert process.stdout is not None  # PIPE, anyio's default
        assert process.stderr is not None
        outputs = (bytearray(), bytearray())
        limit = command.max_output_bytes
        try:
            with anyio.fail_after(command.timeout):
                async with anyio.create_task_group() as group:
                    group.start_soon(_drain, process.stdout, outputs[0], limit, group.cancel_scope)
                    group.start_soon(_drain, process.stderr, outputs[1], limit, group.cancel_scope)
                if max(map(len, outputs)) > limit:
                    raise blocking.command_too_large(command)
                returncode = await process.wait()
        except BaseException as exc:
            # Whether or not the child itself has exited: what it started may hold the pipes.
            blocking.kill_group(process.pid)
            if isinstance(exc, TimeoutError):
                raise blocking.command_timeout(command) from None
            raise
        finally:
            await process.aclose()  # closes the pipes and reaps the child (shielded if cancelled)
        return CommandResult(returncode, bytes(outputs[0]), bytes(outputs[1]))

    async def close(self) -> None:
        for client in self._clients.take_own():
            await client.aclose()
