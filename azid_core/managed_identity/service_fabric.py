"""Service Fabric's managed identity (PROTOCOL.md §4.2, §4.3, §4.7): the GET to the cluster's token
endpoint over TLS pinned to IDENTITY_SERVER_THUMBPRINT.

The endpoint's certificate is self-signed, so no CA vouches for it; the thumbprint is the only
trust. The adapter compares it after the handshake and before the `Secret` header leaves, and a
mismatch is never retried (§10 item 15).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from ..errors import AuthError, ConfigError, NotConfiguredError, TransportError
from ..redact import excerpt
from ..tokens import json_object
from ..wire import SERVICE_POLICY, send_with_retry
from .common import OWNER, chain_policy, read_reply, source_request, unreachable

if TYPE_CHECKING:
    from ..effects import Flow
    from ..tokens import AccessTokenInfo
    from .common import SourceCall

__all__ = ["ServiceFabricSource", "service_fabric_flow", "service_fabric_source"]

SOURCE = "service_fabric"
NAME = f"{OWNER} ({SOURCE})"
API_VERSION = "2019-07-01-preview"
NOT_FOUND = "ManagedIdentityNotFound"
_THUMBPRINT_NOISE = re.compile(r"[ \t\r\n:]")
_SHA1_HEX = re.compile(r"[0-9a-fA-F]{40}", re.ASCII)
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+", re.ASCII)


class ServiceFabricSource(NamedTuple):
    """The cluster's token endpoint, the `Secret` it wants, and the certificate pin (§4.7)."""

    endpoint: str
    identity_header: str
    pin_sha1: bytes

    def __repr__(self) -> str:
        return (
            f"ServiceFabricSource({self.endpoint!r}, identity_header='****', pin_sha1={self.pin_sha1.hex()})"
        )


def service_fabric_source(endpoint: str, identity_header: str, thumbprint: str) -> ServiceFabricSource:
    """The Service Fabric source from IDENTITY_ENDPOINT, IDENTITY_HEADER and IDENTITY_SERVER_THUMBPRINT.

    Raises:  ConfigError for an endpoint that is not https, a header that is not printable ASCII,
             or a thumbprint that is not 40 hex digits (after dropping spaces, tabs, CR, LF and `:`).
             Messages name the variable, never a value.
    """
    parts = urlsplit(endpoint)
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ConfigError(f"{OWNER}: IDENTITY_ENDPOINT is invalid: Service Fabric requires an https URL")
    if not _PRINTABLE_ASCII.fullmatch(identity_header):
        raise ConfigError(f"{OWNER}: IDENTITY_HEADER is invalid: only printable ASCII is allowed")
    digits = _THUMBPRINT_NOISE.sub("", thumbprint)
    if not _SHA1_HEX.fullmatch(digits):
        raise ConfigError(
            f"{OWNER}: IDENTITY_SERVER_THUMBPRINT is invalid: it must be a SHA-1 thumbprint of 40 hex digits"
        )
    return ServiceFabricSource(endpoint, identity_header, bytes.fromhex(digits.lower()))


def _error_code(body: dict[str, object]) -> str | None:
    """Service Fabric's error code: `{"error": {"code": ..., "message": ...}}` (§4.3)."""
    error = body.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def service_fabric_flow(
    source: ServiceFabricSource, call: SourceCall, *, now: float
) -> Flow[AccessTokenInfo]:
    """Get a token from the Service Fabric endpoint, over a connection pinned to the thumbprint.

    Yields:  HttpRequest (with `pin_sha1`), and Sleep between retries (policy S).
    Returns: the token.
    Raises:  ConfigError for a user-assigned selector (Service Fabric has none);
             AuthError for a certificate that does not match the thumbprint, or a service error;
             NotConfiguredError for `ManagedIdentityNotFound` or a 400;
             CredentialUnavailableError when the endpoint is unreachable; ProtocolError for an
             unreadable token reply.
    """
    if call.selector is not None:
        raise ConfigError(
            f"{OWNER}: {call.selector.kind} is invalid: Service Fabric has no user-assigned identities"
        )
    query = [("api-version", API_VERSION), ("resource", call.resource)]
    if call.claims and call.cached_token:
        # The service hands out a fresh token only when told which one the caller already holds (§4.2).
        digest = hashlib.sha256(call.cached_token.encode("utf-8")).hexdigest()
        query.append(("token_sha256_to_refresh", digest))
    request = source_request(
        "GET", source.endpoint, query, [("Secret", source.identity_header)], call, pin_sha1=source.pin_sha1
    )
    secrets = (source.identity_header,)
    try:
        response, now = yield from send_with_retry(request, chain_policy(SERVICE_POLICY, call), now)
    except TransportError as exc:
        if exc.kind == "pin_mismatch":
            raise AuthError(
                f"{NAME}: the endpoint's certificate does not match IDENTITY_SERVER_THUMBPRINT; "
                "nothing was sent to it",
                error="pin_mismatch",
                request_id=call.request_id,
            ) from exc
        raise unreachable(SOURCE, source.endpoint, exc, secrets) from exc
    body = json_object(response.body)
    if not 200 <= response.status < 300 and body is not None and _error_code(body) == NOT_FOUND:
        raise NotConfiguredError(
            f"{NAME}: this application has no managed identity (HTTP {response.status}, {NOT_FOUND}): "
            f"{excerpt(response.body, secrets)}"
        )
    return read_reply(
        response,
        call,
        source=SOURCE,
        expiry_order=("expires_on", "expires_in"),
        now=now,
        secrets=secrets,
        error_field=_error_code,
        body=body,
    )
