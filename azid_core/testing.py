"""Test doubles that need no network: a scripted effect handler and an Entra ID emulator.

`EntraEmulator` is a pure request handler (`HttpRequest -> HttpResponse`) playing the Entra v2.0
token endpoint for the client-credentials grant. Tests call it in-process, or serve it on a
loopback port for the adapters. It records every request, issues signed JWT access tokens, answers
AADSTS-style errors like the real service, and can be told to fail the next requests.

Needs pyjwt (the `test` and `cert` extras); the clock is an argument, as everywhere in azid_core.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from .effects import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from collections.abc import Callable

    from .effects import Effect, Reply

__all__ = ["EntraApp", "EntraEmulator", "ScriptedIO"]


class ScriptedIO:
    """An effect handler that answers with canned replies, in order, and records what it saw.

    A reply that is an exception is raised instead (a `TransportError`, say).
    """

    def __init__(self, *replies: Reply | BaseException) -> None:
        self._replies = list(replies)
        self.seen: list[Effect] = []

    def __call__(self, effect: Effect) -> Reply:
        self.seen.append(effect)
        if not self._replies:
            raise AssertionError(f"ScriptedIO has no reply left for {effect!r}")
        reply = self._replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    @property
    def unused(self) -> int:
        return len(self._replies)


class EntraApp(NamedTuple):
    tenant_id: str
    client_id: str
    client_secret: str


_JSON = (("Content-Type", "application/json; charset=utf-8"),)
TOKEN_PATH = "/oauth2/v2.0/token"


class EntraEmulator:
    """Plays `POST {authority}/{tenant}/oauth2/v2.0/token` for `grant_type=client_credentials`."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        token_lifetime: int = 3600,
        refresh_in: int | None = None,
        signing_key: str = "azid-emulator-signing-key-0123456789abcdef",
    ) -> None:
        self._clock = clock
        self.token_lifetime = token_lifetime
        self.refresh_in = refresh_in
        self._key = signing_key
        self._apps: dict[tuple[str, str], EntraApp] = {}
        self._faults: list[HttpResponse] = []
        self.requests: list[HttpRequest] = []
        self.issued = 0

    # -- setting it up --

    def add_app(self, tenant_id: str, client_id: str, client_secret: str) -> EntraApp:
        app = EntraApp(tenant_id, client_id, client_secret)
        self._apps[(tenant_id, client_id)] = app
        return app

    def fail_next(
        self, status: int, body: bytes | str | dict[str, Any], headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        """Answer the next token request with this reply instead (queued, first in first out)."""
        if isinstance(body, dict):
            payload = json.dumps(body).encode()
            headers = _JSON + headers
        else:
            payload = body.encode() if isinstance(body, str) else body
        self._faults.append(HttpResponse(status, headers, payload))

    def decode(self, token: str) -> dict[str, Any]:
        """The claims of a token this emulator issued (signature and audience not checked)."""
        import jwt

        claims: dict[str, Any] = jwt.decode(
            token,
            self._key,
            algorithms=["HS256"],
            options={"verify_aud": False, "verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
        return claims

    @property
    def token_requests(self) -> int:
        return sum(1 for r in self.requests if r.method == "POST")

    # -- the service --

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        path = urlsplit(request.url).path
        if request.method != "POST" or not path.endswith(TOKEN_PATH):
            return self._error(404, "not_found", 0, f"No endpoint at {request.method} {path}.")
        if self._faults:
            return self._faults.pop(0)
        tenant = path[: -len(TOKEN_PATH)].rsplit("/", 1)[-1]
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        return self._token(tenant, form)

    def _token(self, tenant: str, form: dict[str, str]) -> HttpResponse:
        if form.get("grant_type") != "client_credentials":
            return self._error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        if not any(app.tenant_id == tenant for app in self._apps.values()):
            return self._error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        app = self._apps.get((tenant, form.get("client_id", "")))
        if app is None:
            return self._error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the directory "
                f"'{tenant}'.",
            )
        if form.get("client_secret") != app.client_secret:
            return self._error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                "secret value.",
            )
        scope = form.get("scope", "")
        if len(scope.split()) != 1 or not scope.endswith("/.default"):
            return self._error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a "
                "scope value with /.default suffixed to the resource identifier.",
            )
        return self._issue(app, scope[: -len("/.default")], form.get("claims"))

    def _issue(self, app: EntraApp, audience: str, claims: str | None) -> HttpResponse:
        import jwt

        now = int(self._clock())
        self.issued += 1
        payload: dict[str, Any] = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{app.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.token_lifetime,
            "appid": app.client_id,
            "tid": app.tenant_id,
            "sub": app.client_id,
            "uti": f"emulator-{self.issued}",
        }
        if claims and "CP1" in claims:
            payload["xms_cc"] = ["CP1"]
        reply: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": jwt.encode(payload, self._key, algorithm="HS256"),
        }
        if self.refresh_in is not None:
            reply["refresh_in"] = self.refresh_in
        return HttpResponse(200, _JSON, json.dumps(reply).encode())

    def _error(self, status: int, error: str, code: int, text: str) -> HttpResponse:
        trace_id = f"00000000-0000-0000-0000-{len(self.requests):012d}"
        body = {
            "error": error,
            "error_description": f"AADSTS{code}: {text} Trace ID: {trace_id}",
            "error_codes": [code],
            "timestamp": "2026-11-27 12:00:00Z",
            "trace_id": trace_id,
            "correlation_id": "11111111-1111-1111-1111-111111111111",
        }
        return HttpResponse(status, _JSON, json.dumps(body).encode())
