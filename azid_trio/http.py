"""HTTP/1.1 over trio streams for the `HttpRequest` effect (PROTOCOL.md §0.1).

This module owns one thing: carrying an `HttpRequest` to a server and its `HttpResponse` back, with h11
framing the bytes on a trio stream. That covers splitting the URL, opening TCP and TLS (trust store,
`ca_pem`, `tls_server_name`, the `pin_sha1` check), one idle-connection pool per origin, the deadlines,
and mapping trio, ssl and h11 failures to `TransportError` kinds. It never follows redirects, adds
no headers beyond Host and Content-Length, never retries except once when a pooled connection turns
out to have been closed while idle, and does not use proxies (so `bypass_proxy` needs no handling).
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

import h11
import trio

from azid_core.effects import HttpRequest, HttpResponse
from azid_core.errors import TransportError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["TrioHttp"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_RECEIVE_CHUNK = 65536
# Failures that mean the peer went away or spoke something other than HTTP/1.1.
_CLOSED_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError, OSError)


class _Origin(NamedTuple):
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


class _Target(NamedTuple):
    origin: _Origin
    host_header: str
    path: str


class _Conn:
    """One open stream plus the h11 state machine that frames it."""

    def __init__(self, stream: trio.abc.Stream, origin: _Origin) -> None:
        self.stream = stream
        self.origin = origin
        self.h11 = h11.Connection(h11.CLIENT)
        # Whether this exchange has seen any response byte; only a connection that failed before one
        # arrived may have been closed while idle, and only then is a retry safe.
        self.got_bytes = False
        self.got_eof = False

    def reusable(self) -> bool:
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE


class _StaleConnection(Exception):
    """A pooled connection failed before any response byte: the peer closed it while it sat idle."""


class TrioHttp:
    """Answer `HttpRequest` effects over HTTP/1.1 with h11 on trio streams.

    `ssl_context` is the trust for https (default: `ssl.create_default_context()`, which honours
    SSL_CERT_FILE and SSL_CERT_DIR, created on first use). `open_stream(host, port)` replaces
    `trio.open_tcp_stream`; TLS is still layered on top for https URLs.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        *,
        open_stream: Callable[[str, int], Awaitable[trio.abc.Stream]] | None = None,
    ) -> None:
        self._ssl_context = ssl_context
        self._open_stream = open_stream
        self._ca_contexts: dict[bytes, ssl.SSLContext] = {}
        self._pin_context: ssl.SSLContext | None = None
        self._idle: dict[_Origin, list[_Conn]] = {}

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        target = _target(request)
        event = _h11_request(request, target)
        deadline = trio.current_time() + request.timeout
        idle = self._idle.get(target.origin)
        if idle:
            try:
                return await self._exchange(idle.pop(), request, event, deadline, reused=True)
            except _StaleConnection:
                pass  # the one retry: the server dropped the idle connection before we used it
        conn = await self._connect(target.origin, request, deadline)
        return await self._exchange(conn, request, event, deadline, reused=False)

    async def aclose(self) -> None:
        """Close every idle connection. Later requests open new ones."""
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                await trio.aclose_forcefully(conn.stream)

    # Connection setup -----------------------------------------------------------------------------

    async def _connect(self, origin: _Origin, request: HttpRequest, deadline: float) -> _Conn:
        setup_deadline = deadline
        if request.connect_timeout is not None:
            setup_deadline = min(deadline, trio.current_time() + request.connect_timeout)
        with trio.move_on_at(setup_deadline):
            stream = await self._open(origin)
            try:
                if origin.scheme == "https":
                    stream = await self._start_tls(stream, origin)
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
            return _Conn(stream, origin)
        # Nothing was sent yet, so a slow TCP or TLS setup is a connect failure, not a timeout.
        raise TransportError("connect", f"{origin.where}: connection setup timed out")

    async def _open(self, origin: _Origin) -> trio.abc.Stream:
        try:
            if self._open_stream is not None:
                return await self._open_stream(origin.host, origin.port)
            return await trio.open_tcp_stream(origin.host, origin.port)
        except (OSError, trio.BrokenResourceError) as exc:
            raise TransportError("connect", f"{origin.where}: could not connect") from exc

    async def _start_tls(self, stream: trio.abc.Stream, origin: _Origin) -> trio.abc.Stream:
        context = self._context_for(origin)
        server_name = origin.tls_server_name or origin.host
        # https_compatible: servers commonly close without close_notify, which HTTP framing tolerates.
        tls = trio.SSLStream(stream, context, server_hostname=server_name, https_compatible=True)
        try:
            await tls.do_handshake()
        except (trio.BrokenResourceError, ssl.SSLError, OSError) as exc:
            raise TransportError("tls", f"{origin.where}: TLS handshake failed") from exc
        if origin.pin_sha1 is not None:
            _check_pin(tls.getpeercert(binary_form=True), origin)
        return tls

    def _context_for(self, origin: _Origin) -> ssl.SSLContext:
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
        self, conn: _Conn, request: HttpRequest, event: h11.Request, deadline: float, *, reused: bool
    ) -> HttpResponse:
        """Send the request and read the response on `conn`, then pool or close it."""
        keep = False
        try:
            with trio.move_on_at(deadline):
                response = await _round_trip(conn, request, event, reused=reused)
                keep = conn.reusable()
                return response
            raise TransportError(
                "timeout", f"{conn.origin.where}: no complete response within {request.timeout} s"
            )
        finally:
            if keep:
                conn.h11.start_next_cycle()
                self._idle.setdefault(conn.origin, []).append(conn)
            else:
                await trio.aclose_forcefully(conn.stream)


async def _round_trip(conn: _Conn, request: HttpRequest, event: h11.Request, *, reused: bool) -> HttpResponse:
    wire = _serialize(conn, event, request.body)
    conn.got_bytes = conn.got_eof = False
    try:
        await conn.stream.send_all(wire)
        return await _read_response(conn, request.max_response_bytes)
    except _CLOSED_ERRORS as exc:
        if reused and not conn.got_bytes:
            raise _StaleConnection from exc
        raise TransportError("closed", f"{conn.origin.where}: {_closed_reason(conn, exc)}") from exc


def _serialize(conn: _Conn, event: h11.Request, body: bytes) -> bytes:
    """All request bytes, framed by h11 before any is written, so a framing error sends nothing."""
    try:
        parts = [conn.h11.send(event), conn.h11.send(h11.Data(data=body)) if body else b""]
        parts.append(conn.h11.send(h11.EndOfMessage()))
    except h11.LocalProtocolError as exc:
        # e.g. a caller's Content-Length that does not match the body
        raise TransportError("connect", f"{conn.origin.where}: request framing is invalid") from exc
    return b"".join(part or b"" for part in parts)


async def _read_response(conn: _Conn, limit: int) -> HttpResponse:
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


def _closed_reason(conn: _Conn, exc: BaseException) -> str:
    if conn.got_eof:
        return "peer closed the connection before the response ended"
    if isinstance(exc, h11.RemoteProtocolError):
        return "peer sent an invalid HTTP/1.1 response"
    return "connection reset or closed by peer"


# Pure helpers -------------------------------------------------------------------------------------


def _target(request: HttpRequest) -> _Target:
    try:
        parts = urlsplit(request.url)
        port = parts.port
    except ValueError as exc:
        raise TransportError("connect", "URL is not valid") from exc
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        raise TransportError("connect", "URL needs an http or https scheme and a host")
    origin = _Origin(
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
    host_header = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host_header += f":{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(origin, host_header, path)


def _h11_request(request: HttpRequest, target: _Target) -> h11.Request:
    """The request head: the effect's headers plus Host and Content-Length where missing."""
    names = {name.lower() for name, _ in request.headers}
    headers = list(request.headers)
    if "host" not in names:
        headers.insert(0, ("Host", target.host_header))
    needs_length = request.body or request.method.upper() in {"POST", "PUT"}
    if needs_length and not names & {"content-length", "transfer-encoding"}:
        headers.append(("Content-Length", str(len(request.body))))
    try:
        return h11.Request(method=request.method, target=target.path, headers=headers)
    except (h11.LocalProtocolError, UnicodeError) as exc:
        # h11's message may quote a header value, which can be a secret.
        raise TransportError(
            "connect", f"{target.origin.where}: request method, path or headers are not valid HTTP"
        ) from exc


def _pinning_context() -> ssl.SSLContext:
    # The pin replaces CA and hostname checks (PROTOCOL.md §0.1): the peer is trusted by its leaf's hash.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _ca_context(origin: _Origin) -> ssl.SSLContext:
    assert origin.ca_pem is not None
    try:
        # cadata as str is PEM; as bytes it would be read as DER.
        return ssl.create_default_context(cadata=origin.ca_pem.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
        raise TransportError("tls", f"{origin.where}: ca_pem is not a valid PEM certificate") from exc


def _check_pin(der: object, origin: _Origin) -> None:
    assert origin.pin_sha1 is not None
    seen = hashlib.sha1(der).digest() if isinstance(der, bytes) else b""  # noqa: S324 - the pin format is SHA-1
    if not hmac.compare_digest(seen, origin.pin_sha1):
        raise TransportError("pin_mismatch", f"{origin.where}: server certificate does not match the pin")
