"""`EntraEmulator`: a pure request handler playing Microsoft Entra ID (PROTOCOL.md §1, §2).

It serves `POST {authority}/{tenant}/oauth2/v2.0/token` for every confidential grant azid sends, the
tenant's OpenID configuration (`GET {authority}/{tenant}/v2.0/.well-known/openid-configuration`) and
JWKS (`GET {authority}/{tenant}/discovery/v2.0/keys`), an ADFS farm (`/adfs/...`), the user realm and
the Azure Pipelines OIDC endpoint. It records every request, issues RS256 JWT access tokens with the
claims resource servers check (`testing.service.SigningKey`; `decode` verifies them), answers AADSTS
errors as the real service does, and injects faults (`testing.service.Fault`). `IdentityEmulator`
(`testing.emulator`) adds the managed-identity endpoints on the same handler.

How a client proves itself is checked by `EntraApp`'s registrations: a secret, certificates (see
`testing.certificates`) and federated identities (see `testing.federated`). Grants other than
client credentials live beside this module (`testing.obo`,
`testing.device_code` with its devicecode endpoint). The clock is an argument.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from ..effects import HttpRequest, HttpResponse
from .service import JSON_HEADERS, NOT_BEFORE_SKEW, Service

if TYPE_CHECKING:
    from collections.abc import Callable

    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from .device_code import DeviceCode
    from .obo import EntraUser, RefreshGrant

__all__ = ["JWT_BEARER", "EntraApp", "EntraEmulator", "EntraFault"]

TOKEN_PATH = "/oauth2/v2.0/token"
DEVICECODE_PATH = "/oauth2/v2.0/devicecode"  # the device-code flow's first step (testing.device_code)
OPENID_PATH = "/v2.0/.well-known/openid-configuration"
JWKS_PATH = "/discovery/v2.0/keys"
ADFS_CONFIGURATION_PATH = "/adfs/.well-known/openid-configuration"
ADFS_TOKEN_PATH = "/adfs/oauth2/token"
USER_REALM_PATH = "/common/userrealm/"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
OIDC_PATH = "/oidctoken"  # Azure Pipelines' OIDC endpoint, .../jobs/{job}/oidctoken
FEDERATED_AUDIENCE = "api://AzureADTokenExchange"


class EntraFault(NamedTuple):
    """An Entra error reply: HTTP status, OAuth error, AADSTS code and its text (§1.5)."""

    status: int
    error: str
    code: int
    text: str


class EntraApp:
    """An app registration: its tenant, client ID, service principal object ID (`oid` in its
    tokens), and the credentials it accepts."""

    def __init__(self, tenant_id: str, client_id: str, client_secret: str | None = None) -> None:
        import uuid

        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.object_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"azid-emulator/{tenant_id}/app/{client_id}"))
        self.certificates: list[bytes] = []  # DER of each registered certificate
        self.federated: list[tuple[str, str]] = []  # (issuer, subject) of each federated identity

    def add_certificate(self, certificate: bytes) -> None:
        """Accept assertions signed by this certificate's key (PEM or DER; stored as DER)."""
        from .certificates import certificate_der

        self.certificates.append(certificate_der(certificate))

    def add_federated(self, issuer: str, subject: str) -> None:
        """Accept federated tokens from `issuer` about `subject` as client assertions (§2.3)."""
        self.federated.append((issuer, subject))


class EntraEmulator(Service):
    """Plays Entra ID's token endpoint; see the module docstring. `signing_key` (an RSA private key)
    spares generating one per emulator, as a test suite's session-wide key does."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        token_lifetime: int = 3600,
        refresh_in: int | None = None,
        signing_key: RSAPrivateKey | None = None,
    ) -> None:
        super().__init__(clock=clock, signing_key=signing_key)
        self.token_lifetime = token_lifetime
        self.refresh_in = refresh_in
        self.apps: dict[tuple[str, str], EntraApp] = {}
        self.issued = 0
        # Azure Pipelines (see `testing.federated`): the job's System.AccessToken, and each service
        # connection's federated identity (issuer, subject) by connection ID.
        self.system_access_token = "azid-emulator-system-access-token"
        self.service_connections: dict[str, tuple[str, str]] = {}
        # The delegated grants' users and refresh tokens (testing.obo).
        self.users: dict[tuple[str, str], EntraUser] = {}
        self.federated_domains: set[str] = set()
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        self.device_codes: dict[str, DeviceCode] = {}  # by device code (testing.device_code)

    # -- setting it up --

    def add_app(self, tenant_id: str, client_id: str, client_secret: str | None = None) -> EntraApp:
        app = EntraApp(tenant_id, client_id, client_secret)
        self.apps[(tenant_id, client_id)] = app
        return app

    def add_user(self, tenant_id: str, username: str, password: str) -> EntraUser:
        """A user who signs in with a password (ROPC, §3.3); the user realm calls its domain Managed."""
        from .obo import new_user

        user = new_user(tenant_id, username, password)
        self.users[(tenant_id, username.lower())] = user
        return user

    def add_federated_domain(self, domain: str) -> None:
        """Make the user realm of `domain` Federated (ROPC is then refused, §3.3)."""
        self.federated_domains.add(domain.lower())

    def user_token(self, tenant_id: str, audience_client_id: str, *, upn: str, oid: str) -> str:
        """A user's token for the API `audience_client_id`: an on-behalf-of `user_assertion`."""
        from .obo import user_token

        return user_token(self, tenant_id, audience_client_id, upn=upn, oid=oid)

    def federated_token(
        self, issuer: str, subject: str, *, audience: str = FEDERATED_AUDIENCE, lifetime: int = 3600
    ) -> str:
        """A federated token (signed with the emulator's key) as Kubernetes or Azure Pipelines would
        issue it."""
        from .federated import federated_token

        return federated_token(self, issuer, subject, audience=audience, lifetime=lifetime)

    def add_service_connection(self, app: EntraApp, connection_id: str) -> tuple[str, str]:
        """Register an Azure Pipelines service connection for `app`; its (issuer, subject)."""
        from .federated import add_service_connection

        return add_service_connection(self, app, connection_id)

    def approve_device_code(self, user_code: str, *, upn: str, oid: str | None = None) -> None:
        """The user `upn` signs in with `user_code`: the next poll gets their token (§3.1)."""
        from .device_code import approve

        approve(self, user_code, upn=upn, oid=oid)

    def decline_device_code(self, user_code: str) -> None:
        """The user declines the sign-in for `user_code`: polls get `authorization_declined` (§3.1)."""
        from .device_code import decline

        decline(self, user_code)

    def slow_down_next(self) -> None:
        """Answer the next token poll with `slow_down` (§3.1)."""
        from .device_code import slow_down

        self.fail_next(slow_down(self))

    @property
    def token_requests(self) -> int:
        return sum(1 for r in self.requests if r.method == "POST")

    # -- the service --

    def _source(self, request: HttpRequest) -> str | None:
        path = urlsplit(request.url).path
        if request.method != "POST":
            return None
        if path.endswith(OIDC_PATH):
            return "pipelines"
        if path.endswith(ADFS_TOKEN_PATH):
            return "adfs"
        if path.endswith(DEVICECODE_PATH):
            return "devicecode"
        return "entra" if path.endswith(TOKEN_PATH) else None

    def _route(self, request: HttpRequest) -> HttpResponse:
        parts = urlsplit(request.url)
        path = parts.path
        origin = f"{parts.scheme}://{parts.netloc}"
        if request.method == "GET" and path.endswith(ADFS_CONFIGURATION_PATH):
            document = {"issuer": f"{origin}/adfs", "token_endpoint": f"{origin}{ADFS_TOKEN_PATH}"}
            return HttpResponse(200, JSON_HEADERS, json.dumps(document).encode())
        if request.method == "GET" and path.endswith(OPENID_PATH):
            return self._openid_configuration(origin + path[: -len(OPENID_PATH)])
        if request.method == "GET" and path.endswith(JWKS_PATH):
            return HttpResponse(200, JSON_HEADERS, json.dumps(self.jwks()).encode())
        if request.method == "GET" and path.startswith(USER_REALM_PATH):
            from .obo import user_realm

            return user_realm(self, unquote(path[len(USER_REALM_PATH) :]))
        source = self._source(request)
        if source == "pipelines":
            from .federated import pipelines_oidc

            return pipelines_oidc(self, request)
        if source == "adfs":
            tenant = "adfs"
        elif source == "entra":
            tenant = path[: -len(TOKEN_PATH)].rsplit("/", 1)[-1]
        elif source == "devicecode":
            tenant = path[: -len(DEVICECODE_PATH)].rsplit("/", 1)[-1]
        else:
            return self.error(EntraFault(404, "not_found", 0, f"No endpoint at {request.method} {path}."))
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        if source == "devicecode":
            from .device_code import device_authorization

            return device_authorization(self, tenant, form)
        return self._token(tenant, form, request.url)

    def _openid_configuration(self, tenant_url: str) -> HttpResponse:
        """The tenant's OpenID configuration (§1.1). Its v2.0 `issuer` is the id_token's; access
        tokens for resources that take v1 tokens name `https://sts.windows.net/<tid>/`, as Entra's do."""
        document = {
            "issuer": f"{tenant_url}/v2.0",
            "authorization_endpoint": f"{tenant_url}/oauth2/v2.0/authorize",
            "token_endpoint": f"{tenant_url}{TOKEN_PATH}",
            "device_authorization_endpoint": f"{tenant_url}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{tenant_url}{JWKS_PATH}",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
        }
        return HttpResponse(200, JSON_HEADERS, json.dumps(document).encode())

    def _token(self, tenant: str, form: dict[str, str], url: str) -> HttpResponse:
        grant = form.get("grant_type")
        if grant in {"urn:ietf:params:oauth:grant-type:jwt-bearer", "refresh_token", "password"}:
            from .obo import user_grant

            return user_grant(self, tenant, form, url)
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            from .device_code import device_code_grant

            return device_code_grant(self, tenant, form, url)
        if grant not in {"client_credentials"}:
            return self.error(
                EntraFault(
                    400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
                )
            )
        app = self.find_app(tenant, form.get("client_id", ""))
        if isinstance(app, EntraFault):
            return self.error(app)
        fault = self.authenticate_client(app, form, url)
        if fault is not None:
            return self.error(fault)
        scope = form.get("scope", "")
        if len(scope.split()) != 1 or not scope.endswith("/.default"):
            return self.error(
                EntraFault(
                    400,
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {scope} is not valid. Client credential flows must have "
                    "a scope value with /.default suffixed to the resource identifier.",
                )
            )
        return self.issue(app, scope[: -len("/.default")], form.get("claims"))

    def find_app(self, tenant: str, client_id: str) -> EntraApp | EntraFault:
        """The app `client_id` registered in `tenant`, or the fault Entra answers."""
        if not any(app.tenant_id == tenant for app in self.apps.values()):
            return EntraFault(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        app = self.apps.get((tenant, client_id))
        if app is None:
            return EntraFault(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
            )
        return app

    def authenticate_client(self, app: EntraApp, form: dict[str, str], url: str) -> EntraFault | None:
        """Check the client's secret or assertion; None when it proves to be `app`."""
        if "client_assertion" in form:
            if form.get("client_assertion_type") != JWT_BEARER:
                return EntraFault(
                    400, "invalid_request", 50027, "The client_assertion_type is missing or not jwt-bearer."
                )
            return self._check_assertion(app, form["client_assertion"], url)
        if app.client_secret is None or form.get("client_secret") != app.client_secret:
            return EntraFault(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                "secret value.",
            )
        return None

    def _check_assertion(self, app: EntraApp, assertion: str, url: str) -> EntraFault | None:
        import jwt

        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return EntraFault(400, "invalid_client", 50027, "JWT token is invalid or malformed.")
        if "x5t" in header or "x5t#S256" in header:
            from .certificates import check_certificate_assertion

            return check_certificate_assertion(app, assertion, header, audience=url, now=self.clock())
        from .federated import check_federated_assertion

        return check_federated_assertion(self, app, assertion)

    def issue(
        self,
        app: EntraApp,
        audience: str,
        claims: str | None,
        *,
        extra_claims: dict[str, Any] | None = None,
        extra_reply: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """A token reply for `app`, for `audience`, with CAE's `xms_cc` when the claims ask for CP1."""
        now = int(self.clock())
        self.issued += 1
        payload: dict[str, Any] = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{app.tenant_id}/",
            "iat": now,
            "nbf": now - NOT_BEFORE_SKEW,
            "exp": now + self.token_lifetime,
            "appid": app.client_id,
            "idtyp": "app",
            "oid": app.object_id,
            "tid": app.tenant_id,
            "sub": app.object_id,
            "uti": f"emulator-{self.issued}",
            "ver": "1.0",
        }
        if claims and "CP1" in claims:
            payload["xms_cc"] = ["CP1"]
        payload.update(extra_claims or {})
        reply: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": self.sign(payload),
        }
        if self.refresh_in is not None:
            reply["refresh_in"] = self.refresh_in
        reply.update(extra_reply or {})
        return HttpResponse(200, JSON_HEADERS, json.dumps(reply).encode())

    def error(self, fault: EntraFault) -> HttpResponse:
        """Entra's error body for `fault` (§1.5)."""
        trace_id = f"00000000-0000-0000-0000-{len(self.requests):012d}"
        body = {
            "error": fault.error,
            "error_description": f"AADSTS{fault.code}: {fault.text} Trace ID: {trace_id}",
            "error_codes": [fault.code],
            "timestamp": "2026-11-27 12:00:00Z",
            "trace_id": trace_id,
            "correlation_id": "11111111-1111-1111-1111-111111111111",
        }
        return HttpResponse(fault.status, JSON_HEADERS, json.dumps(body).encode())
