"""asyncio's streams for the h11 engine: `AsyncioHttp` answers `HttpRequest` effects on asyncio.

This module owns only what is asyncio's: TCP by `loop.create_connection`, TLS by `loop.start_tls`, and
the bytes between a transport and the engine. Deadlines are anyio cancel scopes on the loop's clock.
Framing, pooling and failure kinds are `azid_trio.h11_engine`'s.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio

from azid_trio.h11_engine import H11Http

if TYPE_CHECKING:
    import ssl

__all__ = ["AsyncioHttp"]


class _Stream(asyncio.Protocol):
    """One connection as a stream: what the transport delivered, waiting to be received.

    Writes are not paced by `pause_writing`: the engine writes one small request per exchange and
    asyncio's transport buffers it whole.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._received = bytearray()
        self._eof = False
        self._lost: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._received += data
        self._wake()

    def eof_received(self) -> None:
        self._eof = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._lost = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # the engine's ByteStream

    async def send_all(self, data: bytes) -> None:
        assert self.transport is not None
        if self._lost is not None or self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        self.transport.write(data)

    async def receive_some(self, max_bytes: int) -> bytes:
        while not self._received and not self._eof:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        if self._received:
            data = bytes(self._received[:max_bytes])
            del self._received[:max_bytes]
            return data
        if self._lost is not None:
            raise ConnectionResetError("connection lost") from self._lost
        return b""


class _AsyncioIO:
    closed_errors: tuple[type[BaseException], ...] = (OSError,)
    now = staticmethod(anyio.current_time)

    @staticmethod
    def within(deadline: float) -> anyio.CancelScope:
        return anyio.CancelScope(deadline=deadline)

    async def connect(self, host: str, port: int) -> _Stream:
        _, stream = await asyncio.get_running_loop().create_connection(_Stream, host, port)
        return stream

    async def start_tls(self, stream: _Stream, context: ssl.SSLContext, server_name: str) -> _Stream:
        assert stream.transport is not None
        loop = asyncio.get_running_loop()
        stream.transport = await loop.start_tls(
            stream.transport, stream, context, server_hostname=server_name
        )
        return stream

    def peer_certificate(self, stream: _Stream) -> bytes | None:
        assert stream.transport is not None
        der: bytes | None = stream.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return der

    async def close(self, stream: _Stream) -> None:
        assert stream.transport is not None  # set by connection_made
        stream.transport.abort()


class AsyncioHttp(H11Http[_Stream]):
    """Answer `HttpRequest` effects over HTTP/1.1 with h11 on asyncio transports.

    `ssl_context` is the trust for https (default: `ssl.create_default_context()`, created on first
    use). Idle connections are kept per origin; they belong to the event loop that opened them.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(_AsyncioIO(), ssl_context)
