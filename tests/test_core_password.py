"""UsernamePasswordCredential as a core object: the deprecation, the user realm, the password form,
keys and masking (PROTOCOL.md §1.2, §3, §3.3), and the emulator's password grant and user realm."""

from __future__ import annotations

import json
import logging
import pickle
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import pytest

from azid_core.acquire import TokenCall
from azid_core.drive import run
from azid_core.effects import HttpRequest, HttpResponse, Sleep
from azid_core.entra.password import UsernamePasswordCredential
from azid_core.errors import AuthError, ConfigError, CredentialUnavailableError, ProtocolError, TransportError
from azid_core.testing import EntraEmulator, ScriptedIO

if TYPE_CHECKING:
    from azid_core.effects import Reply
    from azid_core.tokens import AccessTokenInfo

NOW = 1_700_000_000.0
CLIENT, USERNAME, PASSWORD = "public-app", "ada@contoso.com", "Pa55~word.value"
TENANT = "tenant-p"
SCOPE = "https://graph.microsoft.com/.default"
REQUEST_ID = "00010203-0405-4607-8809-0a0b0c0d0e0f"
PYTHON = ".".join(str(part) for part in sys.version_info[:3])
REALM = "https://login.microsoftonline.com/common/userrealm/ada%40contoso.com?api-version=1.0"
MANAGED = HttpResponse(200, (), json.dumps({"ver": "1.0", "account_type": "Managed"}).encode())
TOKEN = HttpResponse(200, (), json.dumps({"access_token": "at-1", "expires_in": 3600}).encode())


def entropy(size: int) -> bytes:
    return bytes(range(size))


def make(**kwargs: Any) -> UsernamePasswordCredential:
    kwargs.setdefault("env", {})
    kwargs.setdefault("entropy", entropy)
    with pytest.warns(DeprecationWarning, match=r"^UsernamePasswordCredential is deprecated"):
        return UsernamePasswordCredential(
            kwargs.pop("client_id", CLIENT),
            kwargs.pop("username", USERNAME),
            kwargs.pop("password", PASSWORD),
            **kwargs,
        )


def call(*scopes: str, claims: str | None = None, tenant_id: str | None = None) -> TokenCall:
    return TokenCall(scopes or (SCOPE,), claims, tenant_id, False)


def fetch(
    cred: UsernamePasswordCredential, *replies: Reply | BaseException, token_call: TokenCall | None = None
) -> tuple[AccessTokenInfo, ScriptedIO]:
    io = ScriptedIO(*replies)
    token_call = token_call or call()
    info = run(cred.fetch_flow(token_call, cred.cache_key(token_call), NOW), io)
    assert io.unused == 0
    return info, io


def failing(cred: UsernamePasswordCredential, *replies: Reply | BaseException) -> Exception:
    io = ScriptedIO(*replies)
    token_call = call()
    with pytest.raises(Exception) as caught:  # noqa: PT011  # the caller checks the class
        run(cred.fetch_flow(token_call, cred.cache_key(token_call), NOW), io)
    assert io.unused == 0
    return caught.value


def fields(effect: object) -> list[tuple[str, str]]:
    assert isinstance(effect, HttpRequest)
    return parse_qsl(effect.body.decode(), keep_blank_values=True)


def test_construction_warns_that_the_credential_is_deprecated() -> None:
    with pytest.warns(DeprecationWarning, match="multi-factor authentication") as record:
        UsernamePasswordCredential(CLIENT, USERNAME, PASSWORD, env={})
    assert record[0].filename == __file__  # stacklevel=2: the warning points at the caller


def test_the_user_realm_then_the_password_grant_in_wire_order() -> None:
    info, io = fetch(make(), MANAGED, TOKEN)
    assert info.token == "at-1"
    realm, post = io.seen
    assert isinstance(realm, HttpRequest)
    assert (realm.method, realm.url, realm.body) == ("GET", REALM, b"")
    assert realm.headers == (
        ("User-Agent", f"azid/0.1.0 Python/{PYTHON} ({sys.platform})"),
        ("x-ms-client-request-id", REQUEST_ID),
        ("client-request-id", REQUEST_ID),
        ("Accept", "application/json"),
    )
    assert (realm.timeout, realm.connect_timeout) == (30.0, 10.0)
    assert isinstance(post, HttpRequest)
    assert post.url == "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
    assert [name for name, _ in post.headers] == [
        "User-Agent",
        "x-ms-client-request-id",
        "client-request-id",
        "Accept",
        "Content-Type",
    ]
    assert fields(post) == [
        ("grant_type", "password"),
        ("username", USERNAME),
        ("password", PASSWORD),
        ("client_id", CLIENT),
        ("scope", SCOPE + " offline_access openid profile"),
        ("client_info", "1"),
    ]


def test_the_extra_scopes_are_added_only_when_absent_and_claims_go_last() -> None:
    _, io = fetch(make(), MANAGED, TOKEN, token_call=call(SCOPE, "openid", claims='{"x":1}'))
    assert dict(fields(io.seen[1]))["scope"] == SCOPE + " openid offline_access profile"
    assert fields(io.seen[1])[-1] == ("claims", '{"x":1}')


def test_the_realm_uses_the_authority_origin_and_a_tenant_is_kept() -> None:
    cred = make(authority="https://login.contoso.local:8443/root", tenant_id=TENANT, username="a/b:c@x.com")
    _, io = fetch(cred, MANAGED, TOKEN)
    realm, post = io.seen
    assert isinstance(realm, HttpRequest)
    assert realm.url == "https://login.contoso.local:8443/common/userrealm/a%2Fb%3Ac%40x.com?api-version=1.0"
    assert isinstance(post, HttpRequest)
    assert post.url == f"https://login.contoso.local:8443/root/{TENANT}/oauth2/v2.0/token"


def test_a_404_realm_is_skipped_and_retryable_statuses_are_retried() -> None:
    _, io = fetch(make(), HttpResponse(404, (), b"nope"), TOKEN)
    assert [r.method for r in io.seen if isinstance(r, HttpRequest)] == ["GET", "POST"]
    _, io = fetch(make(), HttpResponse(503, (), b""), None, MANAGED, TOKEN)
    assert [type(e) for e in io.seen] == [HttpRequest, Sleep, HttpRequest, HttpRequest]


def test_a_federated_account_is_refused_before_the_password_is_sent() -> None:
    federated = HttpResponse(200, (), json.dumps({"account_type": "Federated"}).encode())
    error = failing(make(), federated)
    assert isinstance(error, AuthError)
    assert str(error).startswith(
        "UsernamePasswordCredential: the account's domain is federated, and WS-Trust"
    )
    assert error.status == 200


def test_realm_failures_are_typed_and_masked() -> None:
    refused = HttpResponse(
        400, (), json.dumps({"error": "invalid_request", "error_description": PASSWORD}).encode()
    )
    error = failing(make(), refused)
    assert isinstance(error, AuthError)
    assert error.error == "invalid_request"
    garbled = failing(make(), HttpResponse(200, (), f"<html>{PASSWORD}".encode()))
    assert isinstance(garbled, ProtocolError)
    assert str(garbled).startswith(
        "UsernamePasswordCredential: cannot read the Microsoft Entra ID user realm reply: body: not a JSON"
    )
    assert isinstance(failing(make(), HttpResponse(200, (), b"[1]")), ProtocolError)
    down = failing(make(), TransportError("tls", f"bad {PASSWORD}"))
    assert isinstance(down, CredentialUnavailableError)
    assert str(down).startswith(f"UsernamePasswordCredential: the Microsoft Entra ID user realm at {REALM}")
    for text in (str(error), str(garbled), str(down)):
        assert PASSWORD not in text


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"username": ""}, "username"),
        ({"username": None}, "username"),
        ({"password": ""}, "password"),
        ({"password": 5}, "password"),
        ({"client_id": ""}, "client_id"),
        ({"tenant_id": "bad tenant"}, "tenant_id"),
    ],
)
def test_config_errors(kwargs: dict[str, Any], option: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make(**kwargs)
    assert str(caught.value).startswith(f"UsernamePasswordCredential: {option} is invalid")


def test_identity_repr_and_pickle() -> None:
    cred = make()
    key = cred.cache_key(call(tenant_id="tenant-x"))  # organizations: any tenant (§1.3)
    assert key == ((SCOPE,), "tenant-x", False, f"user:https://login.microsoftonline.com:{CLIENT}:{USERNAME}")
    assert repr(cred) == (
        f"UsernamePasswordCredential(client_id='{CLIENT}', username='{USERNAME}', tenant_id='organizations', "
        "authority='https://login.microsoftonline.com')"
    )
    copy = pickle.loads(pickle.dumps(cred))
    assert copy.cache_key(call()) == cred.cache_key(call())


def test_the_password_is_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    cred = make()
    echo = {"error": "invalid_grant", "error_description": f"AADSTS50126: bad password {PASSWORD}"}
    with caplog.at_level(logging.DEBUG, logger="azid"):
        error = failing(cred, MANAGED, HttpResponse(400, (), json.dumps(echo).encode()))
    assert isinstance(error, AuthError)
    assert caplog.records
    for text in (str(error), repr(vars(error)), repr(cred), caplog.text):
        assert PASSWORD not in text


# -- with the emulator --


@pytest.fixture
def emulator() -> EntraEmulator:
    emulator = EntraEmulator(clock=lambda: NOW)
    emulator.add_app(TENANT, CLIENT)
    emulator.add_user(TENANT, USERNAME, PASSWORD)
    return emulator


def emulated(emulator: EntraEmulator, cred: UsernamePasswordCredential) -> AccessTokenInfo:
    token_call = call()
    return run(cred.fetch_flow(token_call, cred.cache_key(token_call), NOW), emulator)  # type: ignore[arg-type]


def test_the_emulator_signs_the_user_in(emulator: EntraEmulator) -> None:
    info = emulated(emulator, make())
    claims = emulator.decode(info.token)
    assert (claims["upn"], claims["tid"], claims["appid"], claims["scp"]) == (
        USERNAME,
        TENANT,
        CLIENT,
        "user_impersonation",
    )
    assert claims["oid"] == emulator.users[(TENANT, USERNAME)].oid
    assert [r.method for r in emulator.requests] == ["GET", "POST"]


def test_the_emulator_refuses_a_wrong_password_and_a_federated_domain(emulator: EntraEmulator) -> None:
    with pytest.raises(AuthError) as caught:
        emulated(emulator, make(password="wrong"))
    assert (caught.value.error, caught.value.error_codes) == ("invalid_grant", (50126,))
    emulator.add_federated_domain("Contoso.com")
    with pytest.raises(AuthError, match="WS-Trust is not supported"):
        emulated(emulator, make())
    assert emulator.requests[-1].method == "GET"


def realm(emulator: EntraEmulator, username: str) -> dict[str, Any]:
    response = emulator(HttpRequest("GET", f"https://login.microsoftonline.com/common/userrealm/{username}"))
    assert response.status == 200
    document: dict[str, Any] = json.loads(response.body)
    return document


def test_the_emulator_user_realm(emulator: EntraEmulator) -> None:
    assert realm(emulator, "ada%40contoso.com")["account_type"] == "Managed"
    assert realm(emulator, "bob@fabrikam.com")["account_type"] == "Unknown"
    emulator.add_federated_domain("fabrikam.com")
    document = realm(emulator, "bob@fabrikam.com")
    assert (document["account_type"], document["federation_protocol"]) == ("Federated", "WSTrust")


def post(emulator: EntraEmulator, form: dict[str, str], tenant: str = "organizations") -> dict[str, Any]:
    url = f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
    body: dict[str, Any] = json.loads(emulator(HttpRequest("POST", url, body=urlencode(form).encode())).body)
    return body


def password_form(**changes: str) -> dict[str, str]:
    form = {"grant_type": "password", "username": USERNAME, "password": PASSWORD, "client_id": CLIENT}
    form["scope"] = SCOPE + " offline_access openid profile"
    form.update(changes)
    return form


def test_the_emulator_password_grant_clients_and_public_refresh(emulator: EntraEmulator) -> None:
    issued = post(emulator, password_form(), tenant=TENANT)
    assert "access_token" in issued
    # A public client's refresh token needs no client proof.
    refresh = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"], "client_id": CLIENT}
    assert "access_token" in post(emulator, {**refresh, "scope": SCOPE})
    assert post(emulator, password_form(username="nobody@contoso.com"))["error_codes"] == [50126]
    assert post(emulator, password_form(), tenant="tenant-other")["error_codes"] == [50126]
    assert post(emulator, password_form(client_id="unknown"))["error_codes"] == [700016]
    # A confidential app must prove itself; a credential it sends is checked.
    emulator.add_app(TENANT, "confidential-app", "app-secret")
    assert post(emulator, password_form(client_id="confidential-app"))["error_codes"] == [7000218]
    wrong = password_form(client_id="confidential-app", client_secret="wrong")
    assert post(emulator, wrong)["error_codes"] == [7000215]
    right = password_form(client_id="confidential-app", client_secret="app-secret")
    assert "access_token" in post(emulator, right)
