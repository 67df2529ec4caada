"""Talking to the Microsoft Entra ID token endpoint: one POST, its retries, and reading the reply
(PROTOCOL.md §1.5, §1.6, §2).

`token_request_flow` is shared by every grant; a grant only decides the form fields. A reply is
either a token (`parse_token_reply`) or an `AuthError` (`parse_error_reply`), never a dict.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NamedTuple

from ..effects import HttpRequest
from ..errors import AuthError, CredentialUnavailableError, TransportError, protocol_error
from ..redact import excerpt, mask
from ..tokens import AccessTokenInfo, json_object, token_from_json
from ..wire import ENTRA_POLICY, form_body, new_request_id, send_with_retry

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..effects import Flow, HttpResponse

__all__ = [
    "EntraRequest",
    "TokenReply",
    "parse_error_reply",
    "parse_token_reply",
    "token_reply_flow",
    "token_request_flow",
]

SERVICE = "Microsoft Entra ID"
CONNECT_TIMEOUT = 10.0  # §0.5: connect deadline for Entra
_AADSTS = re.compile(r"AADSTS([0-9]{1,10})(?![0-9])")


class EntraRequest(NamedTuple):
    """What a grant hands to `token_request_flow`: where to POST, what, and what to mask."""

    owner: str  # the credential's class name, which starts every message
    url: str
    fields: Sequence[tuple[str, str]]
    secrets: tuple[str, ...]
    user_agent: str
    timeout: float
    # The AKS token proxy's TLS settings (§2.3), passed through to the HttpRequest.
    tls_server_name: str | None = None
    ca_pem: bytes | None = None


class TokenReply(NamedTuple):
    """A token, and the refresh token that came with it (user grants keep it, §3.3)."""

    info: AccessTokenInfo
    refresh_token: str | None


def token_request_flow(
    request: EntraRequest, *, now: float, entropy: Callable[[int], bytes]
) -> Flow[AccessTokenInfo]:
    """POST a token request to Entra, retrying per policy E, and read the token from the reply.

    Yields:  HttpRequest, and Sleep between retries.
    Returns: the token, with `refresh_on` set per §7.2.
    Raises:  AuthError if Entra refuses; ProtocolError for an unreadable 2xx reply;
             CredentialUnavailableError if Entra cannot be reached (TransportError as the cause).
    """
    response, now, request_id = yield from _post_flow(request, now=now, entropy=entropy)
    return parse_token_reply(
        response, owner=request.owner, now=now, secrets=request.secrets, request_id=request_id
    )


def token_reply_flow(
    request: EntraRequest, *, now: float, entropy: Callable[[int], bytes]
) -> Flow[TokenReply]:
    """`token_request_flow`, also returning the reply's `refresh_token` (§1.6, §3.3).

    Yields, Raises: as `token_request_flow`.
    """
    response, now, request_id = yield from _post_flow(request, now=now, entropy=entropy)
    body = json_object(response.body)
    info = parse_token_reply(
        response, owner=request.owner, now=now, secrets=request.secrets, request_id=request_id, body=body
    )
    assert body is not None  # parse_token_reply accepts only a JSON object
    return TokenReply(info, _text(body.get("refresh_token")))


def _post_flow(
    request: EntraRequest, *, now: float, entropy: Callable[[int], bytes]
) -> Flow[tuple[HttpResponse, float, str]]:
    """Send the POST per policy E: the last response, the clock after it, and the request id."""
    request_id = new_request_id(entropy)
    http_request = HttpRequest(
        "POST",
        request.url,
        headers=(
            ("User-Agent", request.user_agent),
            ("x-ms-client-request-id", request_id),
            # Entra echoes `client-request-id` in its error bodies and logs.
            ("client-request-id", request_id),
            ("Accept", "application/json"),
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
        ),
        body=form_body(request.fields),
        timeout=request.timeout,
        connect_timeout=min(CONNECT_TIMEOUT, request.timeout),
        tls_server_name=request.tls_server_name,
        ca_pem=request.ca_pem,
    )
    try:
        response, now = yield from send_with_retry(http_request, ENTRA_POLICY, now)
    except TransportError as exc:
        if exc.kind == "too_large":  # the service answered, with more than any token reply holds (§8)
            raise protocol_error(request.owner, SERVICE, "body", mask(exc.detail, request.secrets)) from exc
        raise CredentialUnavailableError(
            f"{request.owner}: {SERVICE} at {request.url} could not be reached ({exc.kind}): "
            f"{mask(exc.detail, request.secrets)}"
        ) from exc
    return response, now, request_id


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_token_reply(
    response: HttpResponse,
    *,
    owner: str,
    now: float,
    secrets: tuple[str, ...],
    request_id: str | None = None,
    body: dict[str, Any] | None = None,
) -> AccessTokenInfo:
    """Read Entra's reply to a token request (§1.5, §1.6); `body`: the reply already parsed."""
    body = body if body is not None else json_object(response.body)
    if not 200 <= response.status < 300 or (body is not None and "error" in body):
        raise parse_error_reply(response, owner=owner, secrets=secrets, request_id=request_id, body=body)
    if body is None:
        shown = excerpt(response.body, secrets) or "empty"
        raise protocol_error(owner, SERVICE, "body", f"not a JSON object: {shown}")
    return token_from_json(body, owner=owner, source=SERVICE, now=now, secrets=secrets)


def _error_codes(body: dict[str, Any], description: str | None) -> tuple[int, ...]:
    codes = body.get("error_codes")
    if isinstance(codes, list):
        found = tuple(
            int(code)
            for code in codes
            if (isinstance(code, int) and not isinstance(code, bool) and 0 <= code < 10**10)
            or (isinstance(code, str) and code.isascii() and code.isdigit() and len(code) <= 10)
        )
        if found:
            return found
    match = _AADSTS.search(description or "")
    return (int(match.group(1)),) if match else ()


def parse_error_reply(
    response: HttpResponse,
    *,
    owner: str,
    secrets: tuple[str, ...],
    request_id: str | None = None,
    body: dict[str, Any] | None = None,
) -> AuthError:
    """The AuthError for an Entra error reply (§1.5): its fields, and a message built from them."""
    body = body if body is not None else json_object(response.body)
    fields: dict[str, Any] = {}
    if body is None:
        shown = excerpt(response.body, secrets)
        fields["body_excerpt"] = shown
        summary = shown.splitlines()[0] if shown.strip() else "no details in the reply"
        head = f"HTTP {response.status}"
    else:
        raw_error = _text(body.get("error"))
        error = mask(raw_error, secrets) if raw_error else None
        raw_description = _text(body.get("error_description"))
        description = mask(raw_description, secrets) if raw_description else None
        codes = _error_codes(body, raw_description)
        fields.update(
            error=error,
            description=description,
            error_codes=codes,
            trace_id=_text(body.get("trace_id")),
            correlation_id=_text(body.get("correlation_id")),
            timestamp=_text(body.get("timestamp")),
            claims=_text(body.get("claims")),
        )
        head = ", ".join(
            [f"HTTP {response.status}"] + ([error] if error else []) + [f"AADSTS{code}" for code in codes]
        )
        summary = description.splitlines()[0] if description else "no description in the reply"
    ids = [
        f"{label} {mask(fields[key], secrets)}"
        for key, label in (("trace_id", "Trace ID"), ("correlation_id", "correlation ID"))
        if fields.get(key)
    ]
    if fields.get("timestamp"):
        ids.append(mask(fields["timestamp"], secrets))
    tail = (" " + "; ".join(ids)) if ids else ""
    message = f"{owner}: {SERVICE} refused the request ({head}): {summary.rstrip('.')}.{tail}"
    return AuthError(message, status=response.status, request_id=request_id, **fields)
