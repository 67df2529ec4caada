"""`ManagedIdentityEmulator`: a pure request handler playing every managed-identity source on one
server (PROTOCOL.md §4.2, §4.3, §4.6).

Each source has its own path (`PATHS`): IMDS under `/imds` (the credential's `imds_endpoint` is
`<server>/imds`), App Service, Azure Arc, Azure ML, Cloud Shell and Service Fabric under theirs.
Every request is checked as the real service checks it (api-version, `Metadata`, the source's
secret header, the selector's query name) and answered as it answers: IMDS's 400 "Required
metadata header not specified", the identity-not-found replies, Arc's `WWW-Authenticate` challenge,
Service Fabric's `{"error": {"code": ...}}`. Expiry fields come in each source's own forms (§4.2
"form seen"; `expiry_form` picks `string`, `int` or `date`). Tokens are RS256 JWTs signed like
`EntraEmulator`'s (`testing.service`); `decode` verifies them. `IdentityEmulator` serves these paths
beside Entra's, with one key, request log and fault queue.

The emulator does no I/O: for Arc the test writes the key file and tells the emulator its path and
content (`arc_key_path`, `arc_key`). It records every request and injects faults (`Fault`, whose
`source` names one of `PATHS`). The clock is an argument.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from ..effects import HttpRequest, HttpResponse
from .service import JSON_HEADERS, NOT_BEFORE_SKEW, Service

if TYPE_CHECKING:
    from collections.abc import Callable

    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

__all__ = ["IMDS_BASE", "PATHS", "ManagedIdentity", "ManagedIdentityEmulator"]

IMDS_BASE = "/imds"
PATHS = {
    "imds": f"{IMDS_BASE}/metadata/identity/oauth2/token",
    "app_service": "/appservice/token",
    "arc": "/arc/metadata/identity/oauth2/token",
    "azure_ml": "/ml/token",
    "cloud_shell": "/cloudshell/token",
    "service_fabric": "/sf/token",
}
API_VERSIONS = {
    "imds": "2018-02-01",
    "app_service": "2019-08-01",
    "arc": "2020-06-01",
    "azure_ml": "2017-09-01",
    "service_fabric": "2019-07-01-preview",
}
# Each source's query name for each selector (§4.2); Cloud Shell and Service Fabric take none.
SELECTORS = {
    "imds": {"client_id": "client_id", "object_id": "object_id", "msi_res_id": "resource_id"},
    "app_service": {"client_id": "client_id", "object_id": "object_id", "mi_res_id": "resource_id"},
    "arc": {"client_id": "client_id", "object_id": "object_id", "msi_res_id": "resource_id"},
    "azure_ml": {"clientid": "client_id", "object_id": "object_id", "msi_res_id": "resource_id"},
    "cloud_shell": {},
    "service_fabric": {},
}
# The form each source's expiry takes by default (§4.2 "form seen").
EXPIRY_FORMS = {
    "imds": "string",
    "app_service": "string",
    "arc": "string",
    "azure_ml": "int",
    "cloud_shell": "string",
    "service_fabric": "int",
}


class ManagedIdentity(NamedTuple):
    """An identity the emulator can issue tokens for; `resource_id` is None for the system one."""

    client_id: str
    object_id: str
    resource_id: str | None = None


def _json(status: int, body: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()) -> HttpResponse:
    return HttpResponse(status, JSON_HEADERS + headers, json.dumps(body).encode())


class ManagedIdentityEmulator(Service):
    """Plays the managed-identity endpoints; see the module docstring. Tokens name `tenant_id`."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        token_lifetime: int = 86400,
        signing_key: RSAPrivateKey | None = None,
        tenant_id: str = "mi-tenant",
        identity_header: str = "azid-emulator-identity-header",
        msi_secret: str = "azid-emulator-msi-secret",
        arc_key_path: str = "/var/opt/azcmagent/tokens/azid-emulator.key",
        arc_key: str = "azid-emulator-arc-key",
        system_assigned: bool = True,
    ) -> None:
        super().__init__(clock=clock, signing_key=signing_key)
        self.token_lifetime = token_lifetime
        self.tenant_id = tenant_id
        self.identity_header = identity_header  # App Service's X-IDENTITY-HEADER, Service Fabric's Secret
        self.msi_secret = msi_secret  # Azure ML's `secret`
        self.arc_key_path = arc_key_path  # the file the Arc challenge names (the test writes it)
        self.arc_key = arc_key  # its content
        self.system: ManagedIdentity | None = (
            ManagedIdentity("00000000-5157-4e4d-0000-000000000001", "00000000-0b1d-0000-0000-000000000001")
            if system_assigned
            else None
        )
        self.user_assigned: list[ManagedIdentity] = []
        self.expiry_form = dict(EXPIRY_FORMS)
        self.issued = 0

    # -- setting it up --

    def add_user_assigned(self, client_id: str, object_id: str, resource_id: str) -> ManagedIdentity:
        identity = ManagedIdentity(client_id, object_id, resource_id)
        self.user_assigned.append(identity)
        return identity

    def requests_to(self, source: str) -> list[HttpRequest]:
        """The requests that reached `source`'s path."""
        return [r for r in self.requests if urlsplit(r.url).path == PATHS[source]]

    # -- the service --

    def _source(self, request: HttpRequest) -> str | None:
        path = urlsplit(request.url).path
        source = next((name for name, known in PATHS.items() if known == path), None)
        method = "POST" if source == "cloud_shell" else "GET"
        return source if request.method == method else None

    def _route(self, request: HttpRequest) -> HttpResponse:
        parts = urlsplit(request.url)
        source = next((name for name, path in PATHS.items() if path == parts.path), None)
        if source is None:
            return _json(404, {"error": "not_found", "error_description": f"No endpoint at {parts.path}"})
        if self._source(request) is None:
            method = "POST" if source == "cloud_shell" else "GET"
            return _json(
                405, {"error": "method_not_allowed", "error_description": f"{source} takes {method}"}
            )
        headers = {name.lower(): value for name, value in request.headers}
        if source == "cloud_shell":
            if parts.query:
                return self._bad_request(source, "Cloud Shell takes the resource in a form, not the query")
            params = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        else:
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
        refused = self._check(source, params, headers)
        if refused is not None:
            return refused
        return self._answer(source, params)

    def _check(self, source: str, query: dict[str, str], headers: dict[str, str]) -> HttpResponse | None:
        """The service's refusal of a request missing what it requires, or None."""
        if source in ("imds", "arc", "cloud_shell") and headers.get("metadata") != "true":
            return _json(
                400,
                {"error": "invalid_request", "error_description": "Required metadata header not specified"},
            )
        if source == "app_service" and headers.get("x-identity-header") != self.identity_header:
            return _json(401, {"statusCode": 401, "message": "X-IDENTITY-HEADER is missing or invalid."})
        if source == "azure_ml" and headers.get("secret") != self.msi_secret:
            return _json(401, {"error": "unauthorized", "error_description": "The secret header is invalid."})
        if source == "service_fabric" and headers.get("secret") != self.identity_header:
            return _json(
                401,
                {
                    "error": {
                        "code": "SecretHeaderNotFound",
                        "message": "Secret is not found in the request headers.",
                    }
                },
            )
        allowed = {"resource", *SELECTORS[source]}
        if source in API_VERSIONS:
            allowed.add("api-version")
            if query.get("api-version") != API_VERSIONS[source]:
                return self._bad_request(source, f"api-version must be {API_VERSIONS[source]}")
        if source == "service_fabric":
            allowed.add("token_sha256_to_refresh")
        unknown = sorted(set(query) - allowed)
        if unknown:
            return self._bad_request(source, f"unexpected parameters {', '.join(unknown)}")
        if not query.get("resource"):
            return self._bad_request(source, "Required audience parameter not specified")
        if source == "arc":
            authorization = headers.get("authorization")
            if authorization is None:
                challenge = (("WWW-Authenticate", f"Basic realm={self.arc_key_path}"),)
                return _json(401, {"error": "unauthorized", "error_description": "Key required"}, challenge)
            if authorization != f"Basic {self.arc_key}":
                return _json(401, {"error": "unauthorized", "error_description": "Invalid key"})
        return None

    def _bad_request(self, source: str, text: str) -> HttpResponse:
        if source == "service_fabric":
            return _json(400, {"error": {"code": "BadRequest", "message": text}})
        if source == "app_service":
            return _json(400, {"statusCode": 400, "message": text})
        return _json(400, {"error": "invalid_request", "error_description": text})

    def _answer(self, source: str, query: dict[str, str]) -> HttpResponse:
        chosen = [name for name in SELECTORS[source] if name in query]
        if len(chosen) > 1:
            return self._bad_request(source, f"only one of {', '.join(SELECTORS[source])} may be given")
        selected = chosen[0] if chosen else None
        identity = self.system if selected is None else self._user_assigned(source, selected, query[selected])
        if identity is None:
            return self._not_found(source)
        if source == "arc" and identity is self.system:
            selected = None  # the agent has only the machine's identity and ignores a selector
        now = int(self.clock())
        self.issued += 1
        token = self._jwt(identity, query["resource"], source, now)
        expires_on = now + self.token_lifetime
        reply: dict[str, Any] = {"access_token": token, "resource": query["resource"], "token_type": "Bearer"}
        reply["expires_on"] = self._expiry(source, self.expiry_form[source], expires_on)
        if source in ("imds", "arc", "cloud_shell"):
            reply["expires_in"] = str(self.token_lifetime)
            reply["ext_expires_in"] = str(self.token_lifetime)
            reply["not_before"] = str(now)
        if source in ("imds", "arc", "app_service"):
            reply["client_id"] = identity.client_id
        if selected is not None:
            # The services echo the identity they served (§4.3 row 2 relies on it for Arc).
            reply[selected] = query[selected]
        return _json(200, reply)

    def _user_assigned(self, source: str, selected: str, value: str) -> ManagedIdentity | None:
        attribute = SELECTORS[source][selected]
        for identity in self.user_assigned:
            if str(getattr(identity, attribute)).lower() == value.lower():
                return identity
        # The Arc agent ignores a selector it does not know and serves the machine's identity.
        return self.system if source == "arc" else None

    def _expiry(self, source: str, form: str, expires_on: int) -> int | str:
        if form == "int":
            return expires_on
        if form == "string":
            return str(expires_on)
        from datetime import datetime, timezone

        moment = datetime.fromtimestamp(expires_on, tz=timezone.utc)
        if source == "azure_ml":
            # Azure ML's `M/D/YYYY h:MM:SS AM +00:00` (§0.6).
            hour = moment.hour % 12 or 12
            meridiem = "PM" if moment.hour >= 12 else "AM"
            return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment:%M:%S} {meridiem} +00:00"
        return moment.strftime("%m/%d/%Y %H:%M:%S +00:00")  # App Service's `05/22/2021 17:14:33 +00:00`

    def _not_found(self, source: str) -> HttpResponse:
        if source == "service_fabric":
            return _json(
                404,
                {"error": {"code": "ManagedIdentityNotFound", "message": "No managed identity is assigned."}},
            )
        if source == "app_service":
            return _json(400, {"statusCode": 400, "message": "Unable to load the proper Managed Identity."})
        return _json(400, {"error": "invalid_request", "error_description": "Identity not found"})

    def _jwt(self, identity: ManagedIdentity, audience: str, source: str, now: int) -> str:
        payload: dict[str, Any] = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now - NOT_BEFORE_SKEW,
            "exp": now + self.token_lifetime,
            "appid": identity.client_id,
            "oid": identity.object_id,
            "tid": self.tenant_id,
            "sub": identity.object_id,
            "idtyp": "app",
            "uti": f"mi-emulator-{self.issued}",
            "azid_source": source,
        }
        if identity.resource_id is not None:
            payload["xms_mirid"] = identity.resource_id
        return self.sign(payload)
