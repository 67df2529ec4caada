"""What adapters share to honour the `HttpRequest` contract (PROTOCOL.md §0.1): the body cap."""

from __future__ import annotations

from .errors import TransportError

__all__ = ["BodyBuffer"]


class BodyBuffer:
    """Collects a decoded response body; more than `limit` bytes is the `too_large` failure."""

    __slots__ = ("_chunks", "_limit", "_size")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0

    def expect(self, content_length: str | None) -> None:
        """Fail before reading when the declared length is already over the limit (async adapters
        then never start, and so never abandon, a body iterator)."""
        declared = (content_length or "").strip()
        # Over 18 digits is over any limit (and int() refuses strings of over 4300 digits).
        if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > self._limit):
            raise TransportError("too_large", f"the response body is over {self._limit} bytes")

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._limit:
            raise TransportError("too_large", f"the response body is over {self._limit} bytes")
        self._chunks.append(chunk)

    def getvalue(self) -> bytes:
        return b"".join(self._chunks)
