"""The emulator's delegated grants: on-behalf-of, refresh token and username/password, and the user
realm document (PROTOCOL.md §1.2, §2, §3.3).

A delegated token carries a user (`upn`, `oid`, `scp`) and comes with a refresh token, an id_token
and client_info. Users are registered with `EntraEmulator.add_user`; tokens a middle tier receives
from its callers are minted with `EntraEmulator.user_token`. Refresh tokens the emulator issued are
tracked in `EntraEmulator.refresh_tokens` (clear it to revoke them all).
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any, NamedTuple

from .entra import EntraFault
from .service import JSON_HEADERS, NOT_BEFORE_SKEW

if TYPE_CHECKING:
    from ..effects import HttpResponse
    from .entra import EntraApp, EntraEmulator

__all__ = ["OBO_GRANT", "USER_GRANTS", "EntraUser", "RefreshGrant", "user_grant", "user_realm", "user_token"]

OBO_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
USER_GRANTS = frozenset({OBO_GRANT, "refresh_token", "password"})
OIDC_SCOPES = frozenset({"offline_access", "openid", "profile"})
USER_CLIENT = "azid-emulator-user-client"  # the app a user token was issued to, in front of the middle tier


class EntraUser(NamedTuple):
    """A user: tenant, sign-in name, password (None: known only from a token) and object ID."""

    tenant_id: str
    username: str
    password: str | None
    oid: str


class RefreshGrant(NamedTuple):
    """What an issued refresh token stands for: the user, the client, and whether it must authenticate."""

    user: EntraUser
    client_id: str
    confidential: bool


def new_user(tenant_id: str, username: str, password: str | None) -> EntraUser:
    import uuid

    oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"azid-emulator/{tenant_id}/{username.lower()}"))
    return EntraUser(tenant_id, username, password, oid)


def user_token(
    emulator: EntraEmulator, tenant_id: str, audience_client_id: str, *, upn: str, oid: str
) -> str:
    """A user's access token for the API `audience_client_id`: what a middle tier receives."""
    now = int(emulator.clock())
    payload = {
        "aud": audience_client_id,
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "iat": now,
        "nbf": now - NOT_BEFORE_SKEW,
        "exp": now + emulator.token_lifetime,
        "appid": USER_CLIENT,
        "idtyp": "user",
        "oid": oid,
        "scp": "access_as_user",
        "sub": oid,
        "tid": tenant_id,
        "upn": upn,
        "uti": f"emulator-user-{oid}",
    }
    return emulator.sign(payload)


def user_realm(emulator: EntraEmulator, username: str) -> HttpResponse:
    """`GET /common/userrealm/{username}` (§1.2): Managed for registered users' domains, Federated
    for domains registered with `add_federated_domain`, else Unknown."""
    from ..effects import HttpResponse

    domain = username.rpartition("@")[2].lower()
    document: dict[str, Any] = {
        "ver": "1.0",
        "account_type": "Unknown",
        "domain_name": domain,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_audience_urn": "urn:federation:MicrosoftOnline",
    }
    if domain in emulator.federated_domains:
        document.update(
            account_type="Federated",
            federation_protocol="WSTrust",
            federation_metadata_url=f"https://sts.{domain}/adfs/services/trust/mex",
            federation_active_auth_url=f"https://sts.{domain}/adfs/services/trust/2005/usernamemixed",
        )
    elif any(user.username.rpartition("@")[2].lower() == domain for user in emulator.users.values()):
        document["account_type"] = "Managed"
    return HttpResponse(200, JSON_HEADERS, json.dumps(document).encode())


def user_grant(emulator: EntraEmulator, tenant: str, form: dict[str, str], url: str) -> HttpResponse:
    """Answer a token request whose grant is one of `USER_GRANTS`."""
    grant = form.get("grant_type")
    if grant == OBO_GRANT:
        result = _on_behalf_of(emulator, tenant, form, url)
    elif grant == "refresh_token":
        result = _refresh(emulator, tenant, form, url)
    else:
        result = _password(emulator, tenant, form, url)
    return emulator.error(result) if isinstance(result, EntraFault) else result


def _on_behalf_of(
    emulator: EntraEmulator, tenant: str, form: dict[str, str], url: str
) -> HttpResponse | EntraFault:
    app = emulator.find_app(tenant, form.get("client_id", ""))
    if isinstance(app, EntraFault):
        return app
    fault = emulator.authenticate_client(app, form, url)
    if fault is not None:
        return fault
    if form.get("requested_token_use") != "on_behalf_of":
        return EntraFault(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'requested_token_use'.",
        )
    user = _assertion_user(emulator, app, form.get("assertion", ""))
    if isinstance(user, EntraFault):
        return user
    return _issue(emulator, app, user, form, confidential=True)


def _assertion_user(emulator: EntraEmulator, app: EntraApp, assertion: str) -> EntraUser | EntraFault:
    """The user of an OBO `assertion`: a user token this emulator minted for `app`, still valid."""
    import jwt

    try:
        claims = emulator.decode(assertion)
    except jwt.PyJWTError:
        return EntraFault(400, "invalid_grant", 50013, "Assertion failed signature validation.")
    if claims.get("aud") not in (app.client_id, f"api://{app.client_id}"):
        return EntraFault(
            400,
            "invalid_grant",
            50013,
            "Assertion audience does not match the Client app presenting the assertion.",
        )
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= emulator.clock():
        return EntraFault(400, "invalid_grant", 500133, "Assertion is not within its valid time range.")
    upn, oid, tid = claims.get("upn"), claims.get("oid"), claims.get("tid")
    if (
        claims.get("idtyp") != "user"
        or not isinstance(upn, str)
        or not isinstance(oid, str)
        or tid != app.tenant_id
    ):
        return EntraFault(400, "invalid_grant", 50013, "Assertion is not a token of a user of this tenant.")
    return EntraUser(app.tenant_id, upn, None, oid)


def _refresh(
    emulator: EntraEmulator, tenant: str, form: dict[str, str], url: str
) -> HttpResponse | EntraFault:
    grant = emulator.refresh_tokens.get(form.get("refresh_token", ""))
    if grant is None:
        return EntraFault(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
    if grant.client_id != form.get("client_id") or tenant not in (
        grant.user.tenant_id,
        "organizations",
        "common",
    ):
        return EntraFault(400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
    app = _client(emulator, grant.user.tenant_id, form, url, confidential=grant.confidential)
    if isinstance(app, EntraFault):
        return app
    return _issue(emulator, app, grant.user, form, confidential=grant.confidential)


def _password(
    emulator: EntraEmulator, tenant: str, form: dict[str, str], url: str
) -> HttpResponse | EntraFault:
    username = form.get("username", "").lower()
    any_tenant = tenant in ("organizations", "common")
    user = next(
        (u for (t, name), u in emulator.users.items() if name == username and (any_tenant or t == tenant)),
        None,
    )
    if user is None or user.password != form.get("password"):
        return EntraFault(
            400, "invalid_grant", 50126, "Error validating credentials due to invalid username or password."
        )
    app = _client(emulator, user.tenant_id, form, url, confidential=False)
    if isinstance(app, EntraFault):
        return app
    return _issue(emulator, app, user, form, confidential=False)


def _client(
    emulator: EntraEmulator, tenant: str, form: dict[str, str], url: str, *, confidential: bool
) -> EntraApp | EntraFault:
    """The app asking; it proves itself when it is confidential, or sends a credential anyway."""
    app = emulator.find_app(tenant, form.get("client_id", ""))
    if isinstance(app, EntraFault):
        return app
    if confidential or "client_secret" in form or "client_assertion" in form:
        return emulator.authenticate_client(app, form, url) or app
    if app.client_secret is not None:
        return EntraFault(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    return app


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _issue(
    emulator: EntraEmulator, app: EntraApp, user: EntraUser, form: dict[str, str], *, confidential: bool
) -> HttpResponse | EntraFault:
    """A delegated token for the one resource the scope names, with a new refresh token."""
    wanted = [scope for scope in form.get("scope", "").split() if scope not in OIDC_SCOPES]
    resources = {scope.rpartition("/")[0] for scope in wanted}
    if not wanted or len(resources) != 1 or "" in resources:
        return EntraFault(
            400, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid."
        )
    resource = resources.pop()
    permissions = [scope.rpartition("/")[2] for scope in wanted]
    scp = " ".join("user_impersonation" if p == ".default" else p for p in permissions)
    refresh_token = f"emulator-refresh-{len(emulator.refresh_tokens) + 1}"
    emulator.refresh_tokens[refresh_token] = RefreshGrant(user, app.client_id, confidential)
    now = int(emulator.clock())
    id_token = emulator.sign(
        {
            "aud": app.client_id,
            "iss": f"https://login.microsoftonline.com/{user.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + emulator.token_lifetime,
            "oid": user.oid,
            "preferred_username": user.username,
            "sub": user.oid,
            "tid": user.tenant_id,
            "ver": "2.0",
        }
    )
    client_info = _b64url(json.dumps({"uid": user.oid, "utid": user.tenant_id}).encode())
    return emulator.issue(
        app,
        resource,
        form.get("claims"),
        extra_claims={
            "idtyp": "user",
            "iss": f"https://sts.windows.net/{user.tenant_id}/",
            "oid": user.oid,
            "scp": scp,
            "sub": user.oid,
            "tid": user.tenant_id,
            "upn": user.username,
        },
        extra_reply={
            "scope": " ".join(wanted),
            "refresh_token": refresh_token,
            "id_token": id_token,
            "client_info": client_info,
        },
    )
