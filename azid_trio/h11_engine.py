"""HTTP/1.1 for the `HttpRequest` effect over any event loop's byte streams (PROTOCOL.md §0.1).

This module owns carrying an `HttpRequest` to a server and its `HttpResponse` back with h11: splitting
the URL, choosing TLS trust (the trust store, `ca_pem`, `tls_server_name`, the `pin_sha1` check), one
idle-connection pool per origin, the deadlines, and the `TransportError` kind of every failure. It
never follows redirects, adds no headers beyond Host and Content-Length, never retries except once
when a pooled connection turns out to have been closed while idle, and does not use proxies (so
`bypass_proxy` needs no handling).

It imports no event loop. A `StreamIO` supplies the loop's streams, clock and deadline scopes
(`azid_trio.http`, for trio).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Generic, NamedTuple, Protocol, TypeVar
from urllib.parse import urlsplit

import h11

from azid_core.effects import HttpRequest, HttpResponse
from azid_core.errors import TransportError
from azid_core.transport import check_pin, pem_text

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from types import TracebackType

__all__ = ["ByteStream", "DeadlineScope", "H11Http", "Origin", "StreamIO"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_RECEIVE_CHUNK = 65536


class ByteStream(Protocol):
    """A connected stream, plain or TLS, as the engine uses it (trio's `Stream` method names)."""

    async def send_all(self, data: bytes) -> None: ...

    async def receive_some(self, max_bytes: int) -> bytes | bytearray:
        """Up to `max_bytes`; b"" once the peer has closed its side."""
        ...


S = TypeVar("S", bound=ByteStream)


class DeadlineScope(Protocol):
    """A block cancelled at `deadline`, which may be moved while the block runs (a trio
    `CancelScope`); `cancel_called` once the deadline has passed."""

    deadline: float

    @property
    def cancel_called(self) -> bool: ...

    def __enter__(self) -> object: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> bool | None: ...


class StreamIO(Protocol[S]):
    """What an event loop supplies: streams, a clock, and deadline scopes."""

    #: Errors a stream raises when the peer resets, closes or is unreachable.
    closed_errors: tuple[type[BaseException], ...]

    def now(self) -> float:
        """The clock `within` deadlines are on."""
        ...

    def within(self, deadline: float) -> DeadlineScope:
        """Cancel the block at `deadline` and carry on after it (trio's `move_on_at`)."""
        ...

    def connect(self, host: str, port: int, /) -> Awaitable[S]:
        """A TCP stream; raises one of `closed_errors` when the host cannot be reached."""
        ...

    async def start_tls(self, stream: S, context: ssl.SSLContext, server_name: str) -> S:
        """The TLS stream over `stream`, handshake done; raises `ssl.SSLError` or a `closed_errors`."""
        ...

    def peer_certificate(self, stream: S) -> bytes | None:
        """The DER leaf certificate of a TLS stream."""
        ...

    async def close(self, stream: S) -> None:
        """Close at once, without a TLS goodbye; never raises."""
        ...


class Origin(NamedTuple):
    """Where a connection goes, and every request field that changes how it is set up."""

    scheme: str
    host: str
    port: int
    tls_server_name: str | None
    ca_pem: bytes | None
    pin_sha1: bytes | None

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class _Conn(Generic[S]):
    """One open stream plus the h11 state machine that frames it."""

    def __init__(self, stream: S, origin: Origin) -> None:
        self.stream = stream
        self.origin = origin
        self.h11 = h11.Connection(h11.CLIENT)
        # Whether this exchange has seen any response byte; only a connection that failed before one
        # arrived may have been closed while idle, and only then is a retry safe.
        self.got_bytes = False
        self.got_eof = False


class _StaleConnection(Exception):
    """A pooled connection failed before any response byte: the peer closed it while it sat idle."""


class H11Http(Generic[S]):
    """Answer `HttpRequest` effects over HTTP/1.1 with h11 on the streams of `io`.

    `ssl_context` is the trust for https (default: `ssl.create_default_context()`, which honours
    SSL_CERT_FILE and SSL_CERT_DIR, created on first use).
    """

    def __init__(self, io: StreamIO[S], ssl_context: ssl.SSLContext | None = None) -> None:
        self._io = io
        self._closed_errors: tuple[type[BaseException], ...] = (h11.RemoteProtocolError, *io.closed_errors)
        self._tls_errors: tuple[type[BaseException], ...] = (ssl.SSLError, *io.closed_errors)
        self._ssl_context = ssl_context
        self._ca_contexts: dict[bytes, ssl.SSLContext] = {}
        self._pin_context: ssl.SSLContext | None = None
        self._idle: dict[Origin, list[_Conn[S]]] = {}

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        origin, event = _prepare(request)
        now = self._io.now()
        deadline = now + request.timeout
        idle = self._idle.get(origin)
        # One deadline scope for the whole request (entering a trio cancel scope costs more than the
        # rest of a pooled request), narrowed to `connect_timeout` while a connection is set up.
        scope = self._io.within(deadline if idle else _setup_deadline(request, now, deadline))
        setting_up = False
        with scope:
            if idle:
                conn = idle.pop()
                conn.h11.start_next_cycle()  # here, not when pooled: most pooled connections die idle
                try:
                    return await self._exchange(conn, request, event, reused=True)
                except _StaleConnection:
                    # The one retry: the server dropped the idle connection before we used it.
                    scope.deadline = _setup_deadline(request, self._io.now(), deadline)
            setting_up = True
            conn = await self._connect(origin)
            if scope.cancel_called:  # set up just as its time ran out: nothing is sent on it
                await self._io.close(conn.stream)
            else:
                setting_up = False
                scope.deadline = deadline
                return await self._exchange(conn, request, event, reused=False)
        if setting_up:
            # Nothing was sent yet, so a slow TCP or TLS setup is a connect failure, not a timeout.
            raise TransportError("connect", f"{origin.where}: connection setup timed out")
        raise TransportError("timeout", f"{origin.where}: no complete response within {request.timeout} s")

    async def aclose(self) -> None:
        """Close every idle connection. Later requests open new ones."""
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                await self._io.close(conn.stream)

    # Connection setup -----------------------------------------------------------------------------

    async def _connect(self, origin: Origin) -> _Conn[S]:
        try:
            stream = await self._io.connect(origin.host, origin.port)
        except self._io.closed_errors as exc:
            raise TransportError("connect", f"{origin.where}: could not connect") from exc
        if origin.scheme == "http":
            return _Conn(stream, origin)
        try:
            context = self._context_for(origin)
            try:
                tls = await self._io.start_tls(stream, context, origin.tls_server_name or origin.host)
            except self._tls_errors as exc:
                raise TransportError("tls", f"{origin.where}: TLS handshake failed") from exc
            if origin.pin_sha1 is not None:
                check_pin(self._io.peer_certificate(tls), origin.pin_sha1, origin.where)
        except BaseException:
            await self._io.close(stream)  # a pin mismatch too: nothing was sent
            raise
        return _Conn(tls, origin)

    def _context_for(self, origin: Origin) -> ssl.SSLContext:
        if origin.pin_sha1 is not None:
            if self._pin_context is None:
                self._pin_context = _pinning_context()
            return self._pin_context
        if origin.ca_pem is not None:
            context = self._ca_contexts.get(origin.ca_pem)
            if context is None:
                context = _ca_context(origin)
                self._ca_contexts[origin.ca_pem] = context
            return context
        if self._ssl_context is None:
            # Lazily, so the constructor reads no certificate files.
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    # The exchange ---------------------------------------------------------------------------------

    async def _exchange(
        self, conn: _Conn[S], request: HttpRequest, event: h11.Request, *, reused: bool
    ) -> HttpResponse:
        """Send the request and read the response on `conn`, then pool or close it."""
        conn.got_bytes = conn.got_eof = False
        keep = False
        try:
            await conn.stream.send_all(_serialize(conn, event, request.body))
            response = await _read_response(conn, request.max_response_bytes)
            keep = conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE
            return response
        except self._closed_errors as exc:
            if reused and not conn.got_bytes:
                raise _StaleConnection from exc
            raise TransportError("closed", f"{conn.origin.where}: {_closed_reason(conn, exc)}") from exc
        finally:
            if keep:
                self._idle.setdefault(conn.origin, []).append(conn)
            else:
                await self._io.close(conn.stream)


def _serialize(conn: _Conn[S], event: h11.Request, body: bytes) -> bytes:
    """All request bytes, framed by h11 before any is written, so a framing error sends nothing."""
    try:
        parts = [conn.h11.send(event), conn.h11.send(h11.Data(data=body)) if body else b""]
        parts.append(conn.h11.send(h11.EndOfMessage()))
    except h11.LocalProtocolError as exc:
        # e.g. a caller's Content-Length that does not match the body
        raise TransportError("connect", f"{conn.origin.where}: request framing is invalid") from exc
    return b"".join(part or b"" for part in parts)


async def _read_response(conn: _Conn[S], limit: int) -> HttpResponse:
    """Loop "next event, or read more" until EndOfMessage; 1xx responses are skipped."""
    head: h11.Response | None = None
    body = bytearray()
    while True:
        event = conn.h11.next_event()
        if event is h11.NEED_DATA:
            data = await conn.stream.receive_some(_RECEIVE_CHUNK)
            conn.got_bytes = conn.got_bytes or bool(data)
            conn.got_eof = not data
            conn.h11.receive_data(bytes(data))  # b"" tells h11 about EOF
        elif isinstance(event, h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > limit:
                raise TransportError("too_large", f"{conn.origin.where}: response body is over {limit} bytes")
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            # raw_items keeps the names as the server spelled them; iterating lowercases them.
            raw = head.headers.raw_items()
            headers = tuple((name.decode("latin-1"), value.decode("latin-1")) for name, value in raw)
            return HttpResponse(head.status_code, headers, bytes(body))
        elif not isinstance(event, h11.InformationalResponse):
            # ConnectionClosed or PAUSED (a protocol switch we never ask for): no HTTP response here.
            raise h11.RemoteProtocolError("unexpected event")


def _setup_deadline(request: HttpRequest, now: float, deadline: float) -> float:
    """When setting up a connection from `now` must be done: `connect_timeout` also bounds it."""
    if request.connect_timeout is None:
        return deadline
    return min(deadline, now + request.connect_timeout)


def _closed_reason(conn: _Conn[S], exc: BaseException) -> str:
    if conn.got_eof:
        return "peer closed the connection before the response ended"
    if isinstance(exc, h11.RemoteProtocolError):
        return "peer sent an invalid HTTP/1.1 response"
    return "connection reset or closed by peer"


# Pure helpers -------------------------------------------------------------------------------------


def _prepare(request: HttpRequest) -> tuple[Origin, h11.Request]:
    """Where `request` goes, and its head: the effect's headers plus Host and Content-Length where
    missing."""
    try:
        parts = urlsplit(request.url)
        port = parts.port
    except ValueError as exc:
        raise TransportError("connect", "URL is not valid") from exc
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        raise TransportError("connect", "URL needs an http or https scheme and a host")
    origin = Origin(
        scheme,
        host,
        port or _DEFAULT_PORTS[scheme],
        request.tls_server_name,
        request.ca_pem,
        request.pin_sha1,
    )
    if scheme == "http" and request.pin_sha1 is not None:
        # A pin over plain TCP would silently check nothing.
        raise TransportError("tls", f"{origin.where}: pin_sha1 needs an https URL")
    names = {name.lower() for name, _ in request.headers}
    headers = list(request.headers)
    if "host" not in names:
        host_header = f"[{host}]" if ":" in host else host
        if port is not None and port != _DEFAULT_PORTS[scheme]:
            host_header += f":{port}"
        headers.insert(0, ("Host", host_header))
    needs_length = request.body or request.method.upper() in {"POST", "PUT"}
    if needs_length and not names & {"content-length", "transfer-encoding"}:
        headers.append(("Content-Length", str(len(request.body))))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        return origin, h11.Request(method=request.method, target=path, headers=headers)
    except (h11.LocalProtocolError, UnicodeError) as exc:
        # h11's message may quote a header value, which can be a secret.
        raise TransportError(
            "connect", f"{origin.where}: request method, path or headers are not valid HTTP"
        ) from exc


def _pinning_context() -> ssl.SSLContext:
    # The pin replaces CA and hostname checks (PROTOCOL.md §0.1): the peer is trusted by its leaf's hash.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _ca_context(origin: Origin) -> ssl.SSLContext:
    assert origin.ca_pem is not None
    try:
        return ssl.create_default_context(cadata=pem_text(origin.ca_pem, origin.where))
    except (ssl.SSLError, ValueError) as exc:
        raise TransportError("tls", f"{origin.where}: ca_pem is not a valid PEM certificate") from exc
