"""The emulator's device-code flow: the devicecode endpoint, the device-code token grant, and the
test's hand in it, approving or declining a code as the user at the verification page would
(PROTOCOL.md §3.1; RFC 8628).

`POST {authority}/{tenant}/oauth2/v2.0/devicecode` hands out a `device_code` and a `user_code`
(deterministic per emulator: the n-th code is the same in every run). Polls of the token endpoint
with `DEVICE_CODE_GRANT` answer `authorization_pending` until `EntraEmulator.approve_device_code`
or `decline_device_code`; past `expires_in` by the emulator's clock they answer `expired_token`. An
approved code issues one delegated token (as `testing.obo` issues them) and is then spent.
`EntraEmulator.slow_down_next` queues RFC 8628's `slow_down` for the next poll. Codes are kept in
`EntraEmulator.device_codes` by device code.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .entra import EntraFault
from .obo import EntraUser, _client, _issue, new_user
from .service import JSON_HEADERS, Fault

if TYPE_CHECKING:
    from ..effects import HttpResponse
    from .entra import EntraApp, EntraEmulator

__all__ = [
    "DEVICE_CODE_EXPIRES_IN",
    "DEVICE_CODE_GRANT",
    "DEVICE_CODE_INTERVAL",
    "VERIFICATION_URI",
    "DeviceCode",
    "approve",
    "decline",
    "device_authorization",
    "device_code_grant",
    "slow_down",
]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
VERIFICATION_URI = "https://microsoft.com/devicelogin"  # only ever shown to the user, never contacted
DEVICE_CODE_EXPIRES_IN = 900  # what Entra answers
DEVICE_CODE_INTERVAL = 5
USER_CODE_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ANY_TENANT = ("organizations", "common")

PENDING = EntraFault(
    400,
    "authorization_pending",
    70016,
    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
)
DECLINED = EntraFault(400, "authorization_declined", 70000, "The user declined the authorization request.")
EXPIRED = EntraFault(
    400, "expired_token", 70020, "The provided authorization code or refresh token has expired."
)
SLOW_DOWN = EntraFault(
    400, "slow_down", 70016, "Polling too often. Increase the interval and continue polling."
)
INVALID = EntraFault(400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")


@dataclass
class DeviceCode:
    """One device code: who asked, for what, until when, and where the user left it."""

    app: EntraApp
    device_code: str
    user_code: str
    scope: str
    claims: str | None
    expires_at: float
    state: str = "pending"  # "approved", "declined" or "spent"
    user: EntraUser | None = None


def device_authorization(emulator: EntraEmulator, tenant: str, form: dict[str, str]) -> HttpResponse:
    """Answer `POST .../devicecode` (§3.1 step 1)."""
    from ..effects import HttpResponse

    app = _find_app(emulator, tenant, form.get("client_id", ""))
    if isinstance(app, EntraFault):
        return emulator.error(app)
    scope = form.get("scope", "")
    if not scope.split():
        return emulator.error(
            EntraFault(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        )
    number = len(emulator.device_codes) + 1
    digest = hashlib.sha256(f"azid-emulator/device-code/{number}".encode()).digest()
    user_code = "".join(USER_CODE_LETTERS[byte % len(USER_CODE_LETTERS)] for byte in digest[:8])
    device_code = "DAQABAAEAAA" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    emulator.device_codes[device_code] = DeviceCode(
        app, device_code, user_code, scope, form.get("claims"), emulator.clock() + DEVICE_CODE_EXPIRES_IN
    )
    reply = {
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": VERIFICATION_URI,
        "expires_in": DEVICE_CODE_EXPIRES_IN,
        "interval": DEVICE_CODE_INTERVAL,
        "message": f"To sign in, use a web browser to open the page {VERIFICATION_URI} and enter the code "
        f"{user_code} to authenticate.",
    }
    return HttpResponse(200, JSON_HEADERS, json.dumps(reply).encode())


def _find_app(emulator: EntraEmulator, tenant: str, client_id: str) -> EntraApp | EntraFault:
    """The app asking; under `organizations` or `common` the user's sign-in picks the tenant, here
    the app's own."""
    if tenant in ANY_TENANT:
        app = next((a for (_, c), a in emulator.apps.items() if c == client_id), None)
        return app if app is not None else emulator.find_app(tenant, client_id)
    return emulator.find_app(tenant, client_id)


def device_code_grant(emulator: EntraEmulator, tenant: str, form: dict[str, str], url: str) -> HttpResponse:
    """Answer a token poll with `DEVICE_CODE_GRANT` (§3.1 step 3)."""
    code = emulator.device_codes.get(form.get("device_code", ""))
    if (
        code is None
        or code.app.client_id != form.get("client_id")
        or tenant not in (code.app.tenant_id, *ANY_TENANT)
        or code.state == "spent"
    ):
        return emulator.error(INVALID)
    if emulator.clock() >= code.expires_at:
        return emulator.error(EXPIRED)
    if code.state == "declined":
        return emulator.error(DECLINED)
    if code.user is None:
        return emulator.error(PENDING)
    app = _client(emulator, code.app.tenant_id, form, url, confidential=False)
    if isinstance(app, EntraFault):
        return emulator.error(app)
    code.state = "spent"
    result = _issue(
        emulator,
        app,
        code.user,
        {"scope": code.scope, "claims": form.get("claims") or code.claims or ""},
        confidential=False,
    )
    return emulator.error(result) if isinstance(result, EntraFault) else result


def _pending(emulator: EntraEmulator, user_code: str) -> DeviceCode:
    code = next((c for c in emulator.device_codes.values() if c.user_code == user_code), None)
    if code is None or code.state != "pending":
        raise ValueError(f"no pending device code with user code {user_code!r}")
    return code


def approve(emulator: EntraEmulator, user_code: str, *, upn: str, oid: str | None = None) -> None:
    """The user `upn` signs in at the verification page with `user_code` (`oid`: derived from `upn`
    as `add_user` derives it, unless given)."""
    code = _pending(emulator, user_code)
    tenant = code.app.tenant_id
    code.state = "approved"
    code.user = EntraUser(tenant, upn, None, oid or new_user(tenant, upn, None).oid)


def decline(emulator: EntraEmulator, user_code: str) -> None:
    """The user declines the sign-in for `user_code`."""
    _pending(emulator, user_code).state = "declined"


def slow_down(emulator: EntraEmulator) -> Fault:
    """RFC 8628's `slow_down`, in Entra's error body, as a fault for the next token poll."""
    response = emulator.error(SLOW_DOWN)
    return Fault(response.status, response.body, response.headers, source="entra")
