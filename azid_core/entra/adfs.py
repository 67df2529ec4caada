"""Active Directory Federation Services: finding an ADFS farm's token endpoint (PROTOCOL.md §1.2).

Tenant `adfs` has no v2.0 endpoint at a fixed path: one GET of the farm's OpenID configuration per
credential says where tokens come from. The endpoint must stay on the authority's origin, so a
tampered configuration cannot send a client's secret elsewhere.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..effects import HttpRequest
from ..errors import CredentialUnavailableError, TransportError, protocol_error
from ..redact import excerpt, mask
from ..wire import ENTRA_POLICY, new_request_id, send_with_retry
from .endpoint import CONNECT_TIMEOUT, parse_error_reply

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..effects import Flow

__all__ = ["adfs_token_endpoint"]

SERVICE = "ADFS"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def adfs_token_endpoint(
    authority: str,
    *,
    owner: str,
    user_agent: str,
    timeout: float,
    now: float,
    entropy: Callable[[int], bytes],
) -> Flow[str]:
    """Read the farm's `token_endpoint` from `{authority}/adfs/.well-known/openid-configuration`.

    Yields:  HttpRequest, and Sleep between retries (policy E).
    Returns: the token endpoint URL, on the authority's origin.
    Raises:  AuthError for an error reply; ProtocolError for an unreadable one or an endpoint on
             another origin; CredentialUnavailableError if ADFS cannot be reached.
    """
    url = f"{authority}/adfs/.well-known/openid-configuration"
    request_id = new_request_id(entropy)
    request = HttpRequest(
        "GET",
        url,
        headers=(
            ("User-Agent", user_agent),
            ("x-ms-client-request-id", request_id),
            ("Accept", "application/json"),
        ),
        timeout=timeout,
        connect_timeout=min(CONNECT_TIMEOUT, timeout),
    )
    try:
        response, _ = yield from send_with_retry(request, ENTRA_POLICY, now)
    except TransportError as exc:
        raise CredentialUnavailableError(
            f"{owner}: {SERVICE} at {url} could not be reached ({exc.kind}): {mask(exc.detail)}"
        ) from exc
    if not 200 <= response.status < 300:
        raise parse_error_reply(response, owner=owner, secrets=(), request_id=request_id)
    try:
        document = json.loads(response.body)
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        shown = excerpt(response.body) or "empty"
        raise protocol_error(owner, SERVICE, "body", f"not a JSON object: {shown}")
    endpoint = document.get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise protocol_error(owner, SERVICE, "token_endpoint", "missing")
    try:
        same_origin = _origin(endpoint) == _origin(authority)
    except ValueError:  # a port that is not a number
        same_origin = False
    if not same_origin:
        shown = mask(endpoint)[:200]
        raise protocol_error(
            owner, SERVICE, "token_endpoint", f"{shown!r} is not on the authority's origin {authority}"
        )
    return endpoint
