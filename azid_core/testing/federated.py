"""The emulator's federated side: minting federated tokens, the Azure Pipelines OIDC endpoint, and
checking federated client assertions as Entra does (PROTOCOL.md §2.3, §2.4).

Federated tokens are RS256 JWTs signed with the emulator's key (`testing.service.SigningKey`),
standing in for the Kubernetes service-account issuer and Azure DevOps' token service; an assertion
verifies only with that key, so a managed-identity token from the same emulator serves as one. An
app accepts the (issuer, subject) pairs in `EntraApp.federated`. AADSTS codes and texts follow
Entra's error reference.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from ..effects import HttpResponse
from .entra import FEDERATED_AUDIENCE, EntraFault
from .service import JSON_HEADERS

if TYPE_CHECKING:
    from ..effects import HttpRequest
    from .entra import EntraApp, EntraEmulator

__all__ = [
    "PIPELINES_ISSUER",
    "add_service_connection",
    "check_federated_assertion",
    "federated_token",
    "pipelines_oidc",
]

PIPELINES_ISSUER = "https://vstoken.dev.azure.com/00000000-0000-0000-0000-00000000a2e0"


def federated_token(
    emulator: EntraEmulator,
    issuer: str,
    subject: str,
    *,
    audience: str = FEDERATED_AUDIENCE,
    lifetime: int = 3600,
) -> str:
    """A federated token issued now (by the emulator's clock), valid for `lifetime` seconds."""
    now = int(emulator.clock())
    payload = {"iss": issuer, "sub": subject, "aud": audience, "iat": now, "nbf": now, "exp": now + lifetime}
    return emulator.sign(payload)


def add_service_connection(emulator: EntraEmulator, app: EntraApp, connection_id: str) -> tuple[str, str]:
    """Register a service connection whose OIDC tokens `app` accepts; its (issuer, subject)."""
    identity = (PIPELINES_ISSUER, f"sc://azid-org/azid-project/{connection_id}")
    emulator.service_connections[connection_id] = identity
    app.add_federated(*identity)
    return identity


def _devops_reply(emulator: EntraEmulator, status: int, body: dict[str, Any]) -> HttpResponse:
    # Azure DevOps' tracing headers, which AzurePipelinesCredential quotes in its errors.
    headers = (
        *JSON_HEADERS,
        ("x-vss-e2eid", f"e2e-{len(emulator.requests):06d}"),
        ("x-msedge-ref", f"Ref A: emulator-{len(emulator.requests)}"),
    )
    return HttpResponse(status, headers, json.dumps(body).encode())


def pipelines_oidc(emulator: EntraEmulator, request: HttpRequest) -> HttpResponse:
    """The Pipelines OIDC endpoint: POST .../oidctoken?api-version=7.1&serviceConnectionId=<id>
    with the job's system access token as Bearer → 200 {"oidcToken": <federated token>}."""
    query = dict(parse_qsl(urlsplit(request.url).query))
    if query.get("api-version") != "7.1":
        return _devops_reply(
            emulator, 400, {"message": "The api-version query parameter is missing or invalid."}
        )
    authorization = next((v for k, v in request.headers if k.lower() == "authorization"), None)
    if authorization != f"Bearer {emulator.system_access_token}":
        return _devops_reply(emulator, 401, {"message": "TF400813: The user is not authorized."})
    identity = emulator.service_connections.get(query.get("serviceConnectionId", ""))
    if identity is None:
        return _devops_reply(emulator, 404, {"message": "The service connection does not exist."})
    return _devops_reply(emulator, 200, {"oidcToken": federated_token(emulator, *identity)})


def check_federated_assertion(emulator: EntraEmulator, app: EntraApp, assertion: str) -> EntraFault | None:
    """None when `assertion` is a valid federated token for one of `app`'s federated identities."""
    import jwt

    try:
        claims = emulator.key.verify(assertion, require=("iss", "sub", "aud", "exp"))
    except jwt.InvalidSignatureError:
        return EntraFault(400, "invalid_client", 700027, "Client assertion failed signature validation.")
    except jwt.PyJWTError:
        claims = {}
    valid_from, expires = claims.get("nbf", 0), claims.get("exp")
    if not (isinstance(valid_from, (int, float)) and isinstance(expires, (int, float))):
        return EntraFault(400, "invalid_client", 50027, "JWT token is invalid or malformed.")
    now = emulator.clock()
    if not valid_from <= now < expires:
        return EntraFault(
            400,
            "invalid_client",
            700024,
            f"Client assertion is not within its valid time range. Current time: {int(now)}, expiry time "
            f"of assertion {expires}.",
        )
    issuer, subject, audience = claims["iss"], claims["sub"], claims["aud"]
    if audience != FEDERATED_AUDIENCE:
        return EntraFault(
            400,
            "invalid_client",
            700212,
            f"No matching federated identity record found for presented assertion audience '{audience}'.",
        )
    if all(issuer != known for known, _ in app.federated):
        return EntraFault(
            400,
            "invalid_client",
            700211,
            f"No matching federated identity record found for presented assertion issuer '{issuer}'.",
        )
    if (issuer, subject) not in app.federated:
        return EntraFault(
            400,
            "invalid_client",
            70021,
            "No matching federated identity record found for presented assertion. Assertion Issuer: "
            f"'{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: '{audience}'.",
        )
    return None
