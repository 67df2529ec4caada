"""The emulator's device-code flow, in-process (PROTOCOL.md §3.1): the devicecode endpoint, polls that
are pending, approved (one token, then spent), declined, expired or told to slow down, and the faults."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest

from azid_core.effects import HttpRequest
from azid_core.testing import EntraEmulator
from azid_core.testing.device_code import DEVICE_CODE_GRANT
from tests.conftest import CLIENT, SECRET, TENANT, FakeClock

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from azid_core.effects import HttpResponse

AUTHORITY = "https://login.emulator.test"
SCOPE = "https://graph.microsoft.com/User.Read"
PUBLIC = "public-app-0002"
UPN, OID = "ada@contoso.test", "00000000-0000-0000-0000-00000000ada0"


@pytest.fixture
def emulator(clock: FakeClock, signing_key: RSAPrivateKey) -> EntraEmulator:
    emulator = EntraEmulator(clock=clock, signing_key=signing_key)
    emulator.add_app(TENANT, PUBLIC)
    emulator.add_app(TENANT, CLIENT, SECRET)
    return emulator


def post(emulator: EntraEmulator, endpoint: str, tenant: str = TENANT, **form: str) -> HttpResponse:
    url = f"{AUTHORITY}/{tenant}/oauth2/v2.0/{endpoint}"
    return emulator(HttpRequest("POST", url, body=urlencode(form).encode()))


def body(response: HttpResponse) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(response.body)
    return value


def start(emulator: EntraEmulator, tenant: str = TENANT, **form: str) -> dict[str, Any]:
    response = post(emulator, "devicecode", tenant, client_id=PUBLIC, scope=SCOPE, **form)
    assert response.status == 200
    return body(response)


def poll(emulator: EntraEmulator, device_code: str, tenant: str = TENANT, **form: str) -> HttpResponse:
    fields = {
        "grant_type": DEVICE_CODE_GRANT,
        "device_code": device_code,
        "client_id": PUBLIC,
        "client_info": "1",
    }
    return post(emulator, "token", tenant, **{**fields, **form})


def error(response: HttpResponse) -> tuple[int, str, int]:
    reply = body(response)
    assert reply["error_description"].startswith(f"AADSTS{reply['error_codes'][0]}: ")
    return response.status, reply["error"], reply["error_codes"][0]


def test_devicecode_answers_the_fields_a_client_needs(emulator: EntraEmulator) -> None:
    reply = start(emulator)
    assert list(reply) == [
        "user_code",
        "device_code",
        "verification_uri",
        "expires_in",
        "interval",
        "message",
    ]
    assert len(reply["user_code"]) == 8
    assert reply["user_code"].isalpha()
    assert reply["user_code"].isupper()
    assert reply["verification_uri"] == "https://microsoft.com/devicelogin"
    assert (reply["expires_in"], reply["interval"]) == (900, 5)
    assert reply["message"] == (
        "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code "
        f"{reply['user_code']} to authenticate."
    )
    second = start(emulator)
    assert second["device_code"] != reply["device_code"]
    assert second["user_code"] != reply["user_code"]
    assert len(emulator.requests) == 2
    assert emulator.requests[0].url.endswith("/devicecode")


def test_codes_are_deterministic_per_emulator(emulator: EntraEmulator, clock: FakeClock) -> None:
    other = EntraEmulator(clock=clock, signing_key=None)
    other.add_app(TENANT, PUBLIC)
    assert [start(other) for _ in range(2)] == [start(emulator) for _ in range(2)]


def test_devicecode_refuses_unknown_tenant_app_and_missing_scope(emulator: EntraEmulator) -> None:
    assert error(post(emulator, "devicecode", "nobody", client_id=PUBLIC, scope=SCOPE)) == (
        400,
        "invalid_request",
        90002,
    )
    assert error(post(emulator, "devicecode", client_id="unknown", scope=SCOPE)) == (
        400,
        "unauthorized_client",
        700016,
    )
    # Under organizations an unknown app has no tenant to be found in.
    assert error(post(emulator, "devicecode", "organizations", client_id="unknown", scope=SCOPE)) == (
        400,
        "invalid_request",
        90002,
    )
    assert error(post(emulator, "devicecode", client_id=PUBLIC, scope=" ")) == (
        400,
        "invalid_request",
        900144,
    )
    assert emulator.device_codes == {}


def test_pending_until_approved_then_one_user_token_then_spent(emulator: EntraEmulator) -> None:
    reply = start(emulator)
    assert error(poll(emulator, reply["device_code"])) == (400, "authorization_pending", 70016)
    assert error(poll(emulator, reply["device_code"])) == (400, "authorization_pending", 70016)
    emulator.approve_device_code(reply["user_code"], upn=UPN, oid=OID)
    response = poll(emulator, reply["device_code"])
    assert response.status == 200
    token = body(response)
    assert token["scope"] == SCOPE
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    claims = emulator.decode(token["access_token"])
    assert (claims["aud"], claims["scp"], claims["upn"], claims["oid"]) == (
        "https://graph.microsoft.com",
        "User.Read",
        UPN,
        OID,
    )
    assert (claims["appid"], claims["tid"], claims["idtyp"]) == (PUBLIC, TENANT, "user")
    assert "xms_cc" not in claims
    info = json.loads(base64.urlsafe_b64decode(token["client_info"] + "=" * (-len(token["client_info"]) % 4)))
    assert info == {"uid": OID, "utid": TENANT}
    assert emulator.decode(token["id_token"])["preferred_username"] == UPN
    assert emulator.refresh_tokens[token["refresh_token"]].user.oid == OID
    assert error(poll(emulator, reply["device_code"])) == (400, "invalid_grant", 70000)
    with pytest.raises(ValueError, match=reply["user_code"]):
        emulator.approve_device_code(reply["user_code"], upn=UPN)


def test_the_refresh_token_it_issues_works(emulator: EntraEmulator) -> None:
    reply = start(emulator)
    emulator.approve_device_code(reply["user_code"], upn=UPN)
    refresh_token = body(poll(emulator, reply["device_code"]))["refresh_token"]
    response = post(
        emulator,
        "token",
        grant_type="refresh_token",
        refresh_token=refresh_token,
        client_id=PUBLIC,
        scope=SCOPE,
    )
    assert response.status == 200
    # Without an oid the user's is derived from the UPN, as add_user derives it.
    assert emulator.decode(body(response)["access_token"])["oid"] == emulator.add_user(TENANT, UPN, "pw").oid


def test_claims_from_the_request_or_the_poll_reach_the_token(emulator: EntraEmulator) -> None:
    cp1 = json.dumps({"access_token": {"xms_cc": {"values": ["CP1"]}}})
    for at_start, at_poll in (({"claims": cp1}, {}), ({}, {"claims": cp1})):
        reply = start(emulator, **at_start)
        emulator.approve_device_code(reply["user_code"], upn=UPN, oid=OID)
        token = body(poll(emulator, reply["device_code"], **at_poll))["access_token"]
        assert emulator.decode(token)["xms_cc"] == ["CP1"]


def test_declined(emulator: EntraEmulator) -> None:
    reply = start(emulator)
    emulator.decline_device_code(reply["user_code"])
    assert error(poll(emulator, reply["device_code"])) == (400, "authorization_declined", 70000)
    assert error(poll(emulator, reply["device_code"])) == (400, "authorization_declined", 70000)
    with pytest.raises(ValueError, match="no pending device code"):
        emulator.approve_device_code(reply["user_code"], upn=UPN)
    with pytest.raises(ValueError, match="'NOSUCHCO'"):
        emulator.decline_device_code("NOSUCHCO")


@pytest.mark.parametrize("approved", [False, True])
def test_expired_by_the_emulator_clock(emulator: EntraEmulator, clock: FakeClock, approved: bool) -> None:
    reply = start(emulator)
    if approved:
        emulator.approve_device_code(reply["user_code"], upn=UPN, oid=OID)
    clock.advance(899)
    assert poll(emulator, reply["device_code"]).status == (200 if approved else 400)
    clock.advance(1)
    assert error(poll(emulator, reply["device_code"])) == (
        (400, "invalid_grant", 70000) if approved else (400, "expired_token", 70020)
    )


def test_slow_down_answers_the_next_poll_only(emulator: EntraEmulator) -> None:
    reply = start(emulator)
    emulator.slow_down_next()
    start(emulator)  # the devicecode endpoint does not take a fault meant for the token poll
    assert error(poll(emulator, reply["device_code"])) == (400, "slow_down", 70016)
    assert error(poll(emulator, reply["device_code"])) == (400, "authorization_pending", 70016)
    assert len(emulator.requests) == 4


def test_faults_reach_the_devicecode_endpoint(emulator: EntraEmulator) -> None:
    emulator.fail_next(503, source="devicecode")
    assert post(emulator, "devicecode", client_id=PUBLIC, scope=SCOPE).status == 503
    assert emulator.device_codes == {}
    emulator.fail_next(429)  # any endpoint
    assert post(emulator, "devicecode", client_id=PUBLIC, scope=SCOPE).status == 429


def test_polls_with_the_wrong_code_client_or_tenant_are_invalid_grants(emulator: EntraEmulator) -> None:
    emulator.add_app("tenant-two", PUBLIC)
    reply = start(emulator)
    emulator.approve_device_code(reply["user_code"], upn=UPN, oid=OID)
    assert error(poll(emulator, "DAQABAAEAAAnope")) == (400, "invalid_grant", 70000)
    assert error(poll(emulator, reply["device_code"], client_id=CLIENT)) == (400, "invalid_grant", 70000)
    assert error(poll(emulator, reply["device_code"], "tenant-two")) == (400, "invalid_grant", 70000)
    assert poll(emulator, reply["device_code"]).status == 200  # none of those spent it


def test_organizations_and_common_take_the_apps_tenant(emulator: EntraEmulator) -> None:
    for tenant in ("organizations", "common"):
        reply = start(emulator, tenant)
        emulator.approve_device_code(reply["user_code"], upn=UPN, oid=OID)
        token = body(poll(emulator, reply["device_code"], tenant))["access_token"]
        assert emulator.decode(token)["tid"] == TENANT


def test_a_confidential_app_must_authenticate_its_polls(emulator: EntraEmulator) -> None:
    reply = body(post(emulator, "devicecode", client_id=CLIENT, scope=SCOPE))
    emulator.approve_device_code(reply["user_code"], upn=UPN, oid=OID)
    assert error(poll(emulator, reply["device_code"], client_id=CLIENT)) == (401, "invalid_client", 7000218)
    response = poll(emulator, reply["device_code"], client_id=CLIENT, client_secret=SECRET)
    assert response.status == 200


def test_a_scope_naming_no_one_resource_fails_at_the_approved_poll(emulator: EntraEmulator) -> None:
    reply = body(post(emulator, "devicecode", client_id=PUBLIC, scope="openid profile"))
    emulator.approve_device_code(reply["user_code"], upn=UPN, oid=OID)
    assert error(poll(emulator, reply["device_code"])) == (400, "invalid_scope", 70011)
    assert error(poll(emulator, reply["device_code"])) == (400, "invalid_grant", 70000)
