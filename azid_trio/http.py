"""trio's streams for the h11 engine: `TrioHttp` answers `HttpRequest` effects on trio.

This module owns only what is trio's: TCP by `trio.open_tcp_stream` (or an injected opener), TLS by
`trio.SSLStream`, trio's clock and cancel scopes. Framing, pooling, deadlines and failure kinds are
`azid_trio.h11_engine`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from .h11_engine import H11Http

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable

__all__ = ["TrioHttp"]


class _TrioIO:
    closed_errors: tuple[type[BaseException], ...] = (
        trio.BrokenResourceError,
        trio.ClosedResourceError,
        OSError,
    )

    def __init__(self, open_stream: Callable[[str, int], Awaitable[trio.abc.Stream]] | None) -> None:
        # The opener itself, not a method awaiting it: one coroutine less per connection.
        self.connect = open_stream or trio.open_tcp_stream

    now = staticmethod(trio.current_time)
    within = staticmethod(trio.move_on_at)

    async def start_tls(
        self, stream: trio.abc.Stream, context: ssl.SSLContext, server_name: str
    ) -> trio.abc.Stream:
        # https_compatible: servers commonly close without close_notify, which HTTP framing tolerates.
        tls = trio.SSLStream(stream, context, server_hostname=server_name, https_compatible=True)
        await tls.do_handshake()
        return tls

    def peer_certificate(self, stream: trio.abc.Stream) -> bytes | None:
        assert isinstance(stream, trio.SSLStream)
        der: bytes | None = stream.getpeercert(binary_form=True)
        return der

    async def close(self, stream: trio.abc.Stream) -> None:
        await trio.aclose_forcefully(stream)


class TrioHttp(H11Http[trio.abc.Stream]):
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
        super().__init__(_TrioIO(open_stream), ssl_context)
