"""HTTP conventions every flow shares: headers, request ids, forms, retries (PROTOCOL.md §0.4, §0.5).

`send_with_retry` is the one retry loop; a `RetryPolicy` says which statuses and transport
failures it retries, how long it waits, and its total sleep budget.
"""

from __future__ import annotations

import math
import re
import sys
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import quote, quote_plus

from .effects import HttpRequest, HttpResponse, Sleep
from .errors import AzidError, ConfigError, TransportError
from .logs import debug

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from urllib.parse import SplitResult

    from .effects import Flow

__all__ = [
    "ENTRA_POLICY",
    "Entropy",
    "RetryPolicy",
    "SERVICE_POLICY",
    "form_body",
    "host_and_port",
    "http",
    "new_request_id",
    "percent_encoded",
    "retry_hint",
    "send_with_retry",
    "sleep",
    "user_agent",
]

VERSION = "0.1.0"
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
# RFC 3986 §2.3, which `quote_plus` never escapes.
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~"
_PYTHON = ".".join(str(part) for part in sys.version_info[:3])

if TYPE_CHECKING:
    Entropy = Callable[[int], bytes]


def new_request_id(entropy: Entropy) -> str:
    """A random (version 4) UUID for `x-ms-client-request-id`, from the credential's entropy source:
    `str(uuid.UUID(bytes=..., version=4))`, written out because `uuid.UUID` takes three times as long
    (RFC 9562 §5.4: version 0100 in the top bits of octet 6, variant 10 in those of octet 8)."""
    octets = bytearray(entropy(16))
    octets[6] = octets[6] & 0x0F | 0x40
    octets[8] = octets[8] & 0x3F | 0x80
    text = octets.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def user_agent(env: Mapping[str, str], *, owner: str, platform: str = sys.platform) -> str:
    """`azid/<ver> Python/<x.y.z> (<platform>)[ $AZURE_HTTP_USER_AGENT]` (§0.4)."""
    agent = f"azid/{VERSION} Python/{_PYTHON} ({platform})"
    suffix = env.get("AZURE_HTTP_USER_AGENT", "").strip()
    if not suffix:
        return agent
    if not _PRINTABLE_ASCII.fullmatch(suffix):
        # A header value from the environment is checked when taken, and never shown (§0.4).
        raise ConfigError(f"{owner}: AZURE_HTTP_USER_AGENT is invalid: only printable ASCII is allowed")
    return f"{agent} {suffix}"


def form_body(fields: Iterable[tuple[str, str]]) -> bytes:
    """A urlencoded UTF-8 form, fields in the given order, `+` for space (§0.4): what `urlencode`
    makes, field by field."""
    return "&".join([f"{_quoted(name)}={_quoted(value)}" for name, value in fields]).encode("ascii")


# Each ASCII character as `quote_plus` (the form) and `quote(safe="")` (paths, queries) write it.
# urllib quotes byte by byte in Python; `str.translate` applies the same table in one C call.
_FORM_ASCII = {code: quote_plus(chr(code)) for code in range(128)}
_PERCENT_ASCII = {code: quote(chr(code), safe="") for code in range(128)}


def _quoted(text: str) -> str:
    # rstrip removes every character when all are unreserved: text that needs no quoting at all.
    if not text.rstrip(_UNRESERVED):
        return text
    return text.translate(_FORM_ASCII) if text.isascii() else quote_plus(text)


def percent_encoded(text: str) -> str:
    """`quote(text, safe="")`, for a query value or a path segment (`/` and `:` encoded too, §0.4)."""
    if not text.rstrip(_UNRESERVED):
        return text
    return text.translate(_PERCENT_ASCII) if text.isascii() else quote(text, safe="")


def host_and_port(parts: SplitResult) -> tuple[str, int | None]:
    """`(parts.hostname or "", parts.port)`, ValueError for a bad port. A netloc without user
    information, IPv6 brackets or a zone (`%`) is `host[:port]`, split here once: urllib's two
    properties split the netloc once each, in four Python calls."""
    netloc = parts.netloc
    if "@" in netloc or "[" in netloc or "%" in netloc:
        return parts.hostname or "", parts.port
    host, _, port = netloc.partition(":")
    if not port:
        return host.lower(), None
    # urllib's rule: ASCII digits only, at most 65535.
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError("the port is not a number from 0 to 65535")
    return host.lower(), int(port)


def http(request: HttpRequest) -> Flow[HttpResponse]:
    """Yield one request; the reply must be its response."""
    debug("http", "sending %r", request)
    try:
        reply = yield request
    except TransportError as exc:
        debug("http", "%r failed: %s", request, exc.kind)
        raise
    if not isinstance(reply, HttpResponse):
        raise AzidError(f"the adapter answered {request!r} with {type(reply).__name__}, not HttpResponse")
    debug("http", "%r answered %d", request, reply.status)
    return reply


def sleep(seconds: float, now: float) -> Flow[float]:
    """Sleep, returning the clock after waking: the adapter's answer, else `now + seconds`."""
    woke = yield Sleep(seconds)
    if isinstance(woke, (int, float)) and not isinstance(woke, bool):
        return float(woke)
    return now + seconds


class RetryPolicy(NamedTuple):
    """Which failures to retry and how (§0.5). `delays[i]` is the wait before retry i + 1, or
    `slow_delays[i]` when the reply just received has a status in `slow_statuses` (IMDS's 410,
    §4.4). At most `transport_retries` retries follow transport failures (None: no extra limit)."""

    statuses: frozenset[int]
    transport_kinds: frozenset[str]
    delays: tuple[float, ...]
    budget: float
    slow_statuses: frozenset[int] = frozenset()
    slow_delays: tuple[float, ...] = ()
    transport_retries: int | None = None


# Policy E: Entra POSTs. azure-identity retries only 500/503/504; a 429 and a request that never
# left the machine are safe to repeat too (§0.5).
ENTRA_POLICY = RetryPolicy(
    statuses=frozenset({429, 500, 503, 504}),
    transport_kinds=frozenset({"connect"}),
    delays=(0.0, 1.6, 3.2),
    budget=60.0,
)
# Policy S: managed identity sources other than IMDS, and the Azure Pipelines OIDC endpoint (§0.5).
SERVICE_POLICY = RetryPolicy(
    statuses=frozenset({408, 429, 500, 502, 503, 504, *range(506, 600)}),
    transport_kinds=frozenset({"connect", "timeout", "closed"}),
    delays=(0.0, 1.6, 3.2),
    budget=60.0,
)
MAX_HINT = 60.0


def _seconds(text: str | None, scale: float) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip()) * scale
    except ValueError:
        return None
    return value if math.isfinite(value) else None  # NaN is no hint


def retry_hint(response: HttpResponse, now: float) -> float | None:
    """The server's requested delay: Retry-After (seconds or HTTP-date), else retry-after-ms, else
    x-ms-retry-after-ms; clamped to 0-60 s. None without a readable hint."""
    retry_after = response.header("retry-after")
    delay = _seconds(retry_after, 1.0)
    if delay is None and retry_after is not None:
        from datetime import timezone
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(retry_after.strip())
            # HTTP-dates are GMT (RFC 9110 §5.6.7); a "-0000" zone parses as naive: not local time.
            delay = (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp() - now
        except (TypeError, ValueError, OverflowError):
            delay = None
    if delay is None:
        delay = _seconds(response.header("retry-after-ms"), 0.001)
    if delay is None:
        delay = _seconds(response.header("x-ms-retry-after-ms"), 0.001)
    if delay is None:
        return None
    return min(max(delay, 0.0), MAX_HINT)


def send_with_retry(
    request: HttpRequest, policy: RetryPolicy, now: float
) -> Flow[tuple[HttpResponse, float]]:
    """Send `request`, retrying per `policy`; return the last response and the clock after it.

    Yields:  HttpRequest, and Sleep between attempts.
    Raises:  TransportError when the last attempt failed in transport.
    """
    slept = 0.0
    retries = transport_retries = 0
    while True:
        last: HttpResponse | TransportError
        try:
            last = yield from http(request)
        except TransportError as exc:
            if exc.kind not in policy.transport_kinds:
                raise
            last = exc
        else:
            if last.status not in policy.statuses:
                return last, now
        slow = isinstance(last, HttpResponse) and last.status in policy.slow_statuses
        delays = policy.slow_delays if slow else policy.delays
        delay = delays[retries] if retries < len(delays) else None
        if isinstance(last, TransportError):
            if policy.transport_retries is not None and transport_retries >= policy.transport_retries:
                delay = None
            transport_retries += 1
        elif delay is not None:
            hint = retry_hint(last, now)
            delay = delay if hint is None else hint
        if delay is None or slept + delay > policy.budget:
            # Out of retries, or a retry that would overrun the budget: report the last reply.
            if isinstance(last, TransportError):
                raise last
            return last, now
        now = yield from sleep(delay, now)
        slept += delay
        retries += 1
