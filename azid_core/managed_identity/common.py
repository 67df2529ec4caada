"""What every managed-identity source shares (PROTOCOL.md §0.4, §4.2, §4.3): the request a source
sends, when it bypasses proxies, reading the reply into a token, and the errors of §4.3.

A source module (`imds`, `app_service`, `arc`, ...) builds its request with `source_request`, sends
it with `wire.send_with_retry` under its policy, and hands the response to `read_reply`. Messages
all begin `ManagedIdentityCredential (<source>):`.
"""

from __future__ import annotations

import ipaddress
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from urllib.parse import urlsplit

from ..effects import HttpRequest
from ..errors import AuthError, CredentialUnavailableError, NotConfiguredError, protocol_error
from ..redact import excerpt, mask
from ..tokens import json_object, token_from_json
from ..wire import host_and_port, percent_encoded

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ..effects import HttpResponse
    from ..errors import TransportError
    from ..tokens import AccessTokenInfo
    from ..wire import RetryPolicy

__all__ = [
    "OWNER",
    "Selector",
    "SourceCall",
    "bypasses_proxy",
    "host_bypasses_proxy",
    "chain_policy",
    "read_reply",
    "selector_query",
    "source_request",
    "unreachable",
]

OWNER = "ManagedIdentityCredential"
CONNECT_TIMEOUT = 5.0  # §0.5: connect deadline for managed-identity endpoints other than IMDS


class Selector(NamedTuple):
    """A user-assigned identity: `kind` is `client_id`, `object_id` or `resource_id` (§4)."""

    kind: str
    value: str


class SourceCall(NamedTuple):
    """One token request as a source's flow sees it."""

    resource: str  # the scope without a trailing `/.default` (§4)
    selector: Selector | None  # None: the system-assigned identity
    claims: str | None  # non-empty: the caller holds a token the service should not serve again
    cached_token: str | None  # the cached token when there are claims (Service Fabric, §4.2)
    in_chain: bool  # a chain is asking: a refused connection is "not here" (§4.5)
    user_agent: str
    request_id: str  # x-ms-client-request-id, kept across retries (§0.4)
    timeout: float  # the attempt deadline (`request_timeout`, §0.5)


def bypasses_proxy(url: str) -> bool:
    """Whether `url`'s host is loopback (localhost, 127.0.0.0/8, ::1) or link-local
    (169.254.0.0/16, fe80::/10): managed-identity endpoints there never go through a proxy (§4.2)."""
    try:
        host, _ = host_and_port(urlsplit(url))
    except ValueError:
        return False  # no request can be made to it either
    return host_bypasses_proxy(host)


def host_bypasses_proxy(host: str) -> bool:
    """`bypasses_proxy` for a lowercased host name or address."""
    if host == "localhost":
        return True
    octets = _ipv4_octets(host)
    if octets is not None:  # IMDS's own address, and most others: without ipaddress's Python layers
        return octets[0] == 127 or octets[:2] == (169, 254)
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_link_local


def _ipv4_octets(host: str) -> tuple[int, ...] | None:
    """The four numbers of a dotted-quad IPv4 address, read as `ipaddress` reads one (decimal, at
    most 255, no leading zero), or None for any other text."""
    parts = host.split(".")
    if len(parts) != 4:
        return None
    for part in parts:
        if not (0 < len(part) <= 3 and part.isascii() and part.isdigit()) or (
            len(part) > 1 and part[0] == "0"
        ):
            return None
    octets = tuple(int(part) for part in parts)
    return octets if max(octets) <= 255 else None


def chain_policy(policy: RetryPolicy, call: SourceCall) -> RetryPolicy:
    """`policy`, except that in a chain a refused connection is not retried: nothing listens there,
    so this source is "not here" at once (§4.5, last paragraph)."""
    if not call.in_chain:
        return policy
    return policy._replace(transport_kinds=policy.transport_kinds - {"connect"})


def selector_query(call: SourceCall, names: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The selector as a query parameter, under the source's name for its kind (§4.2); none for
    the system-assigned identity."""
    if call.selector is None:
        return ()
    return ((names[call.selector.kind], call.selector.value),)


def source_request(
    method: str,
    url: str,
    query: Sequence[tuple[str, str]],
    headers: Sequence[tuple[str, str]],
    call: SourceCall,
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    body: bytes = b"",
    pin_sha1: bytes | None = None,
) -> HttpRequest:
    """A managed-identity request: `query` appended to `url` (`/` and `:` percent-encoded too, §0.4),
    the §0.4 headers then the source's own, and no proxy for loopback and link-local hosts (§4.2)."""
    encoded = "&".join(f"{percent_encoded(name)}={percent_encoded(value)}" for name, value in query)
    full = f"{url}{'&' if '?' in url else '?'}{encoded}" if encoded else url
    return HttpRequest(
        method,
        full,
        headers=(
            ("User-Agent", call.user_agent),
            ("x-ms-client-request-id", call.request_id),
            ("Accept", "application/json"),
            *headers,
        ),
        body=body,
        timeout=call.timeout,
        connect_timeout=min(connect_timeout, call.timeout),
        # The host is the URL's without the query: its split is urllib's, already cached.
        bypass_proxy=pin_sha1 is not None or bypasses_proxy(url),
        pin_sha1=pin_sha1,
    )


def _name(source: str) -> str:
    return f"{OWNER} ({source})"


def unreachable(source: str, url: str, error: TransportError, secrets: tuple[str, ...] = ()) -> Exception:
    """§4.3, first row: the endpoint cannot be reached, so this source is not here. A reply over
    the size limit is no token reply either (§8)."""
    if error.kind == "too_large":
        return protocol_error(_name(source), source, "body", mask(error.detail, secrets))
    where = urlsplit(url)
    return CredentialUnavailableError(
        f"{_name(source)}: the endpoint {where.scheme}://{where.netloc}{where.path} is unreachable "
        f"({error.kind}): {mask(error.detail, secrets)}"
    )


class _Unread(Enum):
    BODY = "not read yet"


def read_reply(
    response: HttpResponse,
    call: SourceCall,
    *,
    source: str,
    expiry_order: tuple[str, str],
    now: float,
    secrets: tuple[str, ...] = (),
    error_field: Callable[[dict[str, object]], str | None] | None = None,
    body: dict[str, Any] | Literal[_Unread.BODY] | None = _Unread.BODY,
) -> AccessTokenInfo:
    """The token in a 2xx reply, or the §4.3 error for any other.

    `error_field` reads the service's error code from a JSON error body (Service Fabric's
    `error.code`, App Service's `statusCode`); by default the body's `error`. `body` is the reply as
    `json_object` reads it, when the source has read it already (it is not read twice).
    Raises:  NotConfiguredError for a 400 (the identity is not assigned); AuthError for another
             non-2xx; ProtocolError for an unreadable 2xx.
    """
    if body is _Unread.BODY:
        body = json_object(response.body)
    if 200 <= response.status < 300:
        if body is None:
            shown = excerpt(response.body, secrets) or "empty"
            raise protocol_error(_name(source), source, "body", f"not a JSON object: {shown}")
        return token_from_json(
            body,
            owner=_name(source),
            source=source,
            now=now,
            secrets=secrets,
            expiry_order=expiry_order,
            producer=f"{OWNER}:{source}",
        )
    shown = excerpt(response.body, secrets)
    if response.status == 400:
        selector = f"{call.selector.kind} {call.selector.value!r}" if call.selector else "system-assigned"
        raise NotConfiguredError(
            f"{_name(source)}: the {selector} identity is not available here (HTTP 400): "
            f"{shown or 'no details in the reply'}"
        )
    raise refusal(
        response,
        source=source,
        secrets=secrets,
        body=body,
        request_id=call.request_id,
        error_field=error_field,
    )


def refusal(
    response: HttpResponse,
    *,
    source: str,
    secrets: tuple[str, ...],
    request_id: str,
    body: dict[str, object] | None = None,
    error_field: Callable[[dict[str, object]], str | None] | None = None,
) -> AuthError:
    """§4.3's AuthError: status, the service's error code, a masked excerpt, both request ids."""
    shown = excerpt(response.body, secrets)
    error: str | None = None
    if body is not None:
        raw = error_field(body) if error_field is not None else body.get("error")
        error = mask(raw, secrets) if isinstance(raw, str) and raw else None
    service_id = response.header("x-ms-request-id")
    ids = f" x-ms-request-id: {mask(service_id, secrets)};" if service_id else ""
    head = f"HTTP {response.status}" + (f", {error}" if error else "")
    return AuthError(
        f"{_name(source)}: the managed identity endpoint refused the request ({head}): "
        f"{shown or 'no details in the reply'}.{ids} x-ms-client-request-id: {request_id}",
        status=response.status,
        error=error,
        request_id=request_id,
        body_excerpt=shown or None,
    )
