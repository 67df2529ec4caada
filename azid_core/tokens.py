"""Tokens as callers see them, and the one parser of expiry values (PROTOCOL.md §0.2, §0.6, §7.2).

`AccessToken` and `AccessTokenInfo` match azure-core's protocols field for field, so any Azure SDK
client accepts what azid returns. Neither shows the token in its repr.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any, NamedTuple, TypeGuard

from .errors import protocol_error
from .redact import mask

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "AccessToken",
    "AccessTokenInfo",
    "is_token_text",
    "json_object",
    "parse_expiry",
    "parse_lifetime",
    "refresh_time",
    "token_from_json",
]

MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z: later values are garbage, not far-future tokens
HALF_LIFE_THRESHOLD = 7200  # tokens living 2 h or more refresh at half-life (§7.2)
MAX_TOKEN_LENGTH = 65536


def is_token_text(value: object) -> TypeGuard[str]:
    """`value` is 1 to 65536 printable ASCII characters other than space (§1.6); with `str` methods,
    which on a first token cost a third of what a regular expression does."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_TOKEN_LENGTH
        and value.isascii()
        and value.isprintable()
        and " " not in value
    )


class AccessToken(NamedTuple):
    """azure-core's `AccessToken`: exactly `token` and `expires_on` (epoch seconds)."""

    token: str
    expires_on: int

    def __repr__(self) -> str:
        return f"AccessToken(token='****', expires_on={self.expires_on})"


class AccessTokenInfo:
    """azure-core's `AccessTokenInfo`, plus `source` naming the credential that produced it."""

    __slots__ = ("expires_on", "refresh_on", "source", "token", "token_type")

    def __init__(
        self,
        token: str,
        expires_on: int,
        *,
        token_type: str = "Bearer",
        refresh_on: int | None = None,
        source: str | None = None,
    ) -> None:
        self.token = token
        self.expires_on = expires_on
        self.token_type = token_type
        self.refresh_on = refresh_on
        self.source = source

    def __repr__(self) -> str:
        return (
            f"AccessTokenInfo(token='****', expires_on={self.expires_on}, "
            f"token_type={self.token_type!r}, refresh_on={self.refresh_on}, source={self.source!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AccessTokenInfo):
            return NotImplemented
        return (self.token, self.expires_on, self.token_type, self.refresh_on, self.source) == (
            other.token,
            other.expires_on,
            other.token_type,
            other.refresh_on,
            other.source,
        )

    __hash__ = None  # type: ignore[assignment]


def refresh_time(issued_at: float, expires_on: int, refresh_in: int | None) -> int | None:
    """When a token should be refreshed (§7.2): `refresh_in` if the service sent one, else at
    half-life for tokens living two hours or more, else never ahead of the 5-minute rule."""
    lifetime = expires_on - issued_at
    if refresh_in is not None and 0 < refresh_in < lifetime:
        return int(issued_at + refresh_in)
    if lifetime >= HALF_LIFE_THRESHOLD:
        return int(issued_at + lifetime // 2)
    return None


# ASCII digits only, and at most 15 before the point: nothing longer is a time, and int() of a
# 4300-digit string raises.
_NUMERIC = re.compile(r"\d{1,15}(\.\d{1,15})?", re.ASCII)
_SIGNED_NUMERIC = re.compile(r"-?\d{1,15}(\.\d{1,15})?", re.ASCII)
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:([Zz])|([+-])(\d{2}):(\d{2}))", re.ASCII
)
_US_DATE = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4}) (\d{1,2}):(\d{2}):(\d{2})(?: ([AaPp][Mm]))? ([+-])(\d{2}):(\d{2})", re.ASCII
)
_AZ_LOCAL = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.\d+)?", re.ASCII)


def _shown(value: object, secrets: tuple[str, ...]) -> str:
    """A bad value as a message shows it (§0.6): masked, and cut when over 64 characters."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**64:
        return "a number of over 64 digits"
    text = mask(repr(value), secrets)
    return text if len(text) <= 64 else text[:30] + "…(masked)"


def _whole_seconds(value: int | float) -> int | None:
    """`value` floored, or None for NaN and infinities (JSON integers of any size are fine)."""
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    return value


def _epoch(fields: tuple[int, int, int, int, int, int], offset_minutes: int) -> int:
    from datetime import datetime, timedelta, timezone

    moment = datetime(*fields, tzinfo=timezone(timedelta(minutes=offset_minutes)))
    return int(moment.timestamp())


def _parse_text(value: str, naive_to_epoch: Callable[[str], float] | None) -> int | None:
    if _NUMERIC.fullmatch(value):
        return int(value.partition(".")[0])  # floored, without a float's rounding
    if m := _ISO.fullmatch(value):
        year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
        offset = 0 if m.group(7) else (1 if m.group(8) == "+" else -1) * (int(m[9]) * 60 + int(m[10]))
        return _epoch((year, month, day, hour, minute, second), offset)
    if m := _US_DATE.fullmatch(value):
        month, day, year, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
        if meridiem := m.group(7):
            if not 1 <= hour <= 12:
                return None
            hour = hour % 12 + (12 if meridiem.lower() == "pm" else 0)
        offset = (1 if m.group(8) == "+" else -1) * (int(m[9]) * 60 + int(m[10]))
        return _epoch((year, month, day, hour, minute, second), offset)
    if naive_to_epoch is not None and _AZ_LOCAL.fullmatch(value):
        # az's `expiresOn` is local time without an offset; only the az fallback reads it (§5.2).
        return int(naive_to_epoch(value))
    return None


def parse_expiry(
    value: Any,
    *,
    field: str,
    source: str,
    owner: str,
    now: float,
    naive_to_epoch: Callable[[str], float] | None = None,
    secrets: tuple[str, ...] = (),
) -> int:
    """Read an absolute expiry in any of the forms token services send (§0.6); epoch seconds.

    Raises ProtocolError(source, field) for anything else, for a value not after `now`, and for a
    value past year 9999.
    """
    result: int | None = None
    if isinstance(value, bool):
        result = None  # JSON true/false are numbers to Python; never an expiry
    elif isinstance(value, (int, float)):
        result = _whole_seconds(value) if value >= 0 else None
    elif isinstance(value, str):
        try:
            result = _parse_text(value.strip(), naive_to_epoch)
        except (ValueError, OverflowError, OSError):
            result = None  # impossible dates, e.g. month 13
    if result is None:
        raise protocol_error(owner, source, field, f"not an expiry time: {_shown(value, secrets)}")
    if not now < result <= MAX_EPOCH:
        problem = "already past" if result <= now else "beyond year 9999"
        raise protocol_error(owner, source, field, f"{_shown(result, secrets)} is {problem}")
    return result


def parse_lifetime(value: Any, *, field: str, source: str, owner: str, secrets: tuple[str, ...] = ()) -> int:
    """Read a relative number of seconds (`expires_in`, `refresh_in`): a number or numeric string."""
    seconds: int | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = _whole_seconds(value)
    elif isinstance(value, str) and _SIGNED_NUMERIC.fullmatch(value.strip()):
        seconds = int(value.strip().partition(".")[0])
    if seconds is None:
        raise protocol_error(owner, source, field, f"not a number of seconds: {_shown(value, secrets)}")
    if abs(seconds) > MAX_EPOCH:
        raise protocol_error(owner, source, field, f"{_shown(seconds, secrets)} seconds is beyond year 9999")
    return seconds


def json_object(body: bytes) -> dict[str, Any] | None:
    """`body` as a JSON object, or None when it is not one."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return value if isinstance(value, dict) else None


def token_from_json(
    body: dict[str, Any],
    *,
    owner: str,
    source: str,
    now: float,
    secrets: tuple[str, ...] = (),
    expiry_order: tuple[str, str] = ("expires_in", "expires_on"),
    producer: str | None = None,
) -> AccessTokenInfo:
    """The token in a service's JSON reply (§1.6, §4.2): `access_token` of 1 to 65536 printable
    ASCII characters; the expiry from the first of `expiry_order` present (a bad value there is an
    error, not a reason to read the other); optional `refresh_in` and `token_type` (default Bearer).
    `producer` names the token's `source` (default: `owner`).

    Raises:  ProtocolError(source, field) for anything else.
    """
    token = body.get("access_token")
    if not is_token_text(token):
        problem = "missing" if token is None else "not 1 to 65536 printable ASCII characters"
        raise protocol_error(owner, source, "access_token", problem)
    first, second = expiry_order
    field = first if first in body else second if second in body else None
    lifetime = body.get("expires_in") if field == "expires_in" else None
    if type(lifetime) is str and len(lifetime) <= 15 and lifetime.isascii() and lifetime.isdigit():
        lifetime = int(lifetime)  # managed identity's services send the number as text (§0.6)
    if type(lifetime) is int and 0 < lifetime <= MAX_EPOCH - int(now):
        # What nearly every reply holds: a whole positive number of seconds, the sum in range (it is
        # after `now`, being at least 1 over int(now)). Any other value takes the checks below.
        expires_on = int(now) + lifetime
    elif field == "expires_in":
        lifetime = parse_lifetime(body[field], field=field, source=source, owner=owner, secrets=secrets)
        if lifetime <= 0:
            raise protocol_error(owner, source, field, f"{lifetime} is not positive")
        # int(now): Python ints cannot overflow, a float sum with a 400-digit lifetime would.
        expires_on = parse_expiry(
            int(now) + lifetime, field=field, source=source, owner=owner, now=now, secrets=secrets
        )
    elif field == "expires_on":
        expires_on = parse_expiry(
            body[field], field=field, source=source, owner=owner, now=now, secrets=secrets
        )
    else:
        raise protocol_error(owner, source, first, f"missing (and no {second})")
    refresh_in = None
    if "refresh_in" in body:
        refresh_in = parse_lifetime(
            body["refresh_in"], field="refresh_in", source=source, owner=owner, secrets=secrets
        )
    token_type = body.get("token_type")
    return AccessTokenInfo(
        token,
        expires_on,
        token_type=token_type if isinstance(token_type, str) and token_type else "Bearer",
        refresh_on=refresh_time(now, expires_on, refresh_in),
        source=producer or owner,
    )
