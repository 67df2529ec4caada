"""What adapters share to honour the `HttpRequest` contract (PROTOCOL.md §0.1): the body cap, the TLS
setting of a request, and the `pin_sha1` comparison."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, NamedTuple

from .errors import TransportError

if TYPE_CHECKING:
    from .effects import HttpRequest

__all__ = ["BodyBuffer", "TlsSetting", "check_pin", "pem_text", "pin_mismatch"]


class TlsSetting(NamedTuple):
    """The `HttpRequest` fields that an adapter honours with a client or session of its own, one per
    distinct setting, never with a user's (PROTOCOL.md §0.1)."""

    pin_sha1: bytes | None
    tls_server_name: str | None
    ca_pem: bytes | None
    bypass_proxy: bool

    @classmethod
    def of(cls, request: HttpRequest) -> TlsSetting | None:
        """The request's setting, or None when it has none (any client may carry it)."""
        setting = cls(request.pin_sha1, request.tls_server_name, request.ca_pem, request.bypass_proxy)
        return None if setting == _PLAIN else setting

    @property
    def direct(self) -> bool:
        """No proxy, whatever HTTP(S)_PROXY and NO_PROXY say: `bypass_proxy`, and every pin (§0.1)."""
        return self.bypass_proxy or self.pin_sha1 is not None


_PLAIN = TlsSetting(None, None, None, False)


def pem_text(ca_pem: bytes, where: str) -> str:
    """`ca_pem` as the text `ssl` takes for PEM `cadata`; `TransportError` (`tls`) when it is empty,
    which `ssl` would take as "no extra trust" and load the default store, or not ASCII, so not PEM."""
    if not ca_pem or not ca_pem.isascii():
        raise TransportError("tls", f"{where}: ca_pem is not a valid PEM certificate")
    return ca_pem.decode("ascii")


def pin_mismatch(where: str) -> TransportError:
    """The `pin_mismatch` failure; it names neither certificate's hash (the server chose one of them)."""
    return TransportError("pin_mismatch", f"{where}: server certificate does not match the pin")


def check_pin(der: bytes | None, pin: bytes, where: str) -> None:
    """Raise `pin_mismatch` unless SHA-1(`der`, the peer's leaf certificate) is `pin`, compared in
    constant time (PROTOCOL.md §0.1). Adapters call it after the handshake, before any request byte."""
    seen = hashlib.sha1(der).digest() if der else b""  # noqa: S324 - the pin format is SHA-1
    if not hmac.compare_digest(seen, pin):
        raise pin_mismatch(where)


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
