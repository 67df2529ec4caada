"""OnBehalfOfCredential as a core object: the OBO and refresh forms, refresh-token reuse and its
fallback, client authentication, keys, masking (PROTOCOL.md §2, §2.1, §3.3, §7.1), and the
emulator's delegated grants."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import pickle
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import jwt
import pytest

from azid_core.acquire import TokenCall
from azid_core.drive import run
from azid_core.effects import FunctionCall, FunctionResult, HttpRequest, HttpResponse
from azid_core.entra.endpoint import EntraRequest, token_reply_flow
from azid_core.entra.obo import OnBehalfOfCredential
from azid_core.errors import AuthError, AzidError, ConfigError, CredentialUnavailableError, TransportError
from azid_core.testing import EntraEmulator, ScriptedIO
from tests import certs

if TYPE_CHECKING:
    from azid_core.effects import Reply
    from azid_core.tokens import AccessTokenInfo

NOW = 1_700_000_000.0
TENANT, CLIENT, SECRET = "tenant-a", "api-a", "obo~Secret.value-1"
SCOPE = "https://graph.microsoft.com/.default"
USER_ASSERTION = "eyJ0eXAiOiJKV1QifQ.eyJ1cG4iOiJ1c2VyQGEifQ.c2ln-user"
CLIENT_ASSERTION = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhcGktYSJ9.c2ln-client"
REFRESH, ROTATED = "refresh-token-value-1", "refresh-token-value-2"
REQUEST_ID = "00010203-0405-4607-8809-0a0b0c0d0e0f"
PYTHON = ".".join(str(part) for part in sys.version_info[:3])
JWTB = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
OBO = "urn:ietf:params:oauth:grant-type:jwt-bearer"
URL = f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
DIGEST = hashlib.sha256(USER_ASSERTION.encode()).hexdigest()


def entropy(size: int) -> bytes:
    return bytes(range(size))


def make(**kwargs: Any) -> OnBehalfOfCredential:
    kwargs.setdefault("env", {})
    kwargs.setdefault("entropy", entropy)
    kwargs.setdefault("user_assertion", USER_ASSERTION)
    if not {"client_secret", "client_certificate", "client_assertion_func"} & set(kwargs):
        kwargs["client_secret"] = SECRET
    return OnBehalfOfCredential(TENANT, CLIENT, **kwargs)


def reply(status: int = 200, **body: Any) -> HttpResponse:
    if status == 200:
        body.setdefault("access_token", "at-1")
        body.setdefault("expires_in", 3600)
    return HttpResponse(status, (("Content-Type", "application/json"),), json.dumps(body).encode())


def call(
    *scopes: str, claims: str | None = None, tenant_id: str | None = None, cae: bool = False
) -> TokenCall:
    return TokenCall(scopes or (SCOPE,), claims, tenant_id, cae)


def fetch(
    cred: OnBehalfOfCredential, *replies: Reply | BaseException, token_call: TokenCall | None = None
) -> tuple[AccessTokenInfo, ScriptedIO]:
    io = ScriptedIO(*replies)
    token_call = token_call or call()
    info = run(cred.fetch_flow(token_call, cred.cache_key(token_call), NOW), io)
    assert io.unused == 0
    return info, io


def fields(effect: object) -> list[tuple[str, str]]:
    assert isinstance(effect, HttpRequest)
    return parse_qsl(effect.body.decode(), keep_blank_values=True)


def obo_fields(*auth: tuple[str, str], scope: str = SCOPE) -> list[tuple[str, str]]:
    return [
        ("client_id", CLIENT),
        ("grant_type", OBO),
        ("client_info", "1"),
        *(auth or (("client_secret", SECRET),)),
        ("requested_token_use", "on_behalf_of"),
        ("scope", scope + " offline_access openid profile"),
        ("assertion", USER_ASSERTION),
    ]


def refresh_fields(token: str, *auth: tuple[str, str]) -> list[tuple[str, str]]:
    return [
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("scope", SCOPE + " offline_access openid profile"),
        ("client_id", CLIENT),
        ("client_info", "1"),
        *(auth or (("client_secret", SECRET),)),
    ]


# -- the OBO form (§2) --


def test_obo_request_url_headers_and_form_in_wire_order() -> None:
    info, io = fetch(make(), reply(refresh_token=REFRESH))
    assert info.token == "at-1"
    assert info.source == "OnBehalfOfCredential"
    [request] = io.seen
    assert isinstance(request, HttpRequest)
    assert (request.method, request.url) == ("POST", URL)
    assert request.headers == (
        ("User-Agent", f"azid/0.1.0 Python/{PYTHON} ({sys.platform})"),
        ("x-ms-client-request-id", REQUEST_ID),
        ("client-request-id", REQUEST_ID),
        ("Accept", "application/json"),
        ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
    )
    assert fields(request) == obo_fields()
    assert (request.timeout, request.connect_timeout) == (30.0, 10.0)


def test_claims_are_the_last_field_of_both_forms() -> None:
    cred = make()
    cae = call(claims='{"access_token":{"acrs":{"essential":true,"value":"c1"}}}', cae=True)
    merged = '{"access_token": {"acrs": {"essential": true, "value": "c1"}, "xms_cc": {"values": ["CP1"]}}}'
    _, io = fetch(cred, reply(refresh_token=REFRESH), token_call=cae)
    assert fields(io.seen[0]) == [*obo_fields(), ("claims", merged)]
    _, io = fetch(cred, reply(), token_call=cae)
    assert fields(io.seen[0]) == [*refresh_fields(REFRESH), ("claims", merged)]


def test_scopes_keep_caller_order_and_get_the_extra_scopes() -> None:
    _, io = fetch(make(), reply(), token_call=call("api://b/read", "api://b/write"))
    assert dict(fields(io.seen[0]))["scope"] == "api://b/read api://b/write offline_access openid profile"


# -- the refresh token (§3.3) --


def test_a_refresh_token_is_tried_first_and_a_rotated_one_replaces_it() -> None:
    cred = make()
    fetch(cred, reply(refresh_token=REFRESH))
    info, io = fetch(cred, reply(access_token="at-2", refresh_token=ROTATED))
    assert info.token == "at-2"
    assert fields(io.seen[0]) == refresh_fields(REFRESH)
    _, io = fetch(cred, reply(access_token="at-3"))  # no new refresh token: the rotated one stays
    assert fields(io.seen[0]) == refresh_fields(ROTATED)
    _, io = fetch(cred, reply(access_token="at-4"))
    assert fields(io.seen[0]) == refresh_fields(ROTATED)


def test_no_refresh_token_in_the_reply_means_the_obo_grant_again() -> None:
    cred = make()
    fetch(cred, reply())
    _, io = fetch(cred, reply())
    assert fields(io.seen[0]) == obo_fields()


def test_invalid_grant_on_refresh_drops_it_and_falls_back_to_the_obo_grant(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cred = make()
    fetch(cred, reply(refresh_token=REFRESH))
    refused = reply(400, error="invalid_grant", error_description="AADSTS70000: Provided grant is invalid.")
    with caplog.at_level(logging.DEBUG, logger="azid"):
        info, io = fetch(cred, refused, reply(access_token="at-2"))
    assert info.token == "at-2"
    assert [fields(effect)[0] for effect in io.seen] == [
        ("grant_type", "refresh_token"),
        ("client_id", CLIENT),
    ]
    assert fields(io.seen[1]) == obo_fields()
    assert "the refresh token was refused" in caplog.text
    _, io = fetch(cred, reply())  # the refused token is gone
    assert fields(io.seen[0]) == obo_fields()


def test_another_error_on_refresh_raises_and_keeps_the_refresh_token() -> None:
    cred = make()
    fetch(cred, reply(refresh_token=REFRESH))
    io = ScriptedIO(reply(401, error="invalid_client", error_description="AADSTS7000215: bad secret"))
    token_call = call()
    with pytest.raises(AuthError) as caught:
        run(cred.fetch_flow(token_call, cred.cache_key(token_call), NOW), io)
    assert caught.value.error == "invalid_client"
    _, io = fetch(cred, reply())
    assert fields(io.seen[0]) == refresh_fields(REFRESH)


def test_refresh_tokens_are_kept_per_tenant() -> None:
    cred = make(additionally_allowed_tenants=["tenant-b"])
    fetch(cred, reply(refresh_token=REFRESH))
    _, io = fetch(cred, reply(refresh_token=ROTATED), token_call=call(tenant_id="tenant-b"))
    request = io.seen[0]
    assert isinstance(request, HttpRequest)
    assert request.url == "https://login.microsoftonline.com/tenant-b/oauth2/v2.0/token"
    assert fields(request) == obo_fields()
    _, io = fetch(cred, reply())
    assert fields(io.seen[0]) == refresh_fields(REFRESH)
    _, io = fetch(cred, reply(), token_call=call(tenant_id="tenant-b"))
    assert fields(io.seen[0]) == refresh_fields(ROTATED)


def test_token_reply_flow_returns_the_refresh_token_or_none() -> None:
    request = EntraRequest("Owner", URL, [("a", "b")], (), "ua", 5.0)
    bodies: list[tuple[dict[str, Any], str | None]] = [
        ({"refresh_token": "rt"}, "rt"),
        ({"refresh_token": ""}, None),
        ({}, None),
    ]
    for body, expected in bodies:
        got = run(token_reply_flow(request, now=NOW, entropy=entropy), ScriptedIO(reply(200, **body)))
        assert (got.info.token, got.refresh_token) == ("at-1", expected)


# -- client authentication --


def test_an_assertion_function_is_called_through_the_adapter_on_every_request() -> None:
    def func() -> str:
        return CLIENT_ASSERTION

    cred = make(client_assertion_func=func)
    auth = (("client_assertion_type", JWTB), ("client_assertion", CLIENT_ASSERTION))
    _, io = fetch(cred, FunctionResult(CLIENT_ASSERTION), reply(refresh_token=REFRESH))
    effect = io.seen[0]
    assert isinstance(effect, FunctionCall)
    assert effect.function is func
    assert effect.purpose == "client assertion"
    assert fields(io.seen[1]) == obo_fields(*auth)
    _, io = fetch(cred, FunctionResult(CLIENT_ASSERTION), reply())
    assert isinstance(io.seen[0], FunctionCall)
    assert fields(io.seen[1]) == refresh_fields(REFRESH, *auth)


def test_a_bad_assertion_function_result_is_a_config_error_naming_the_option() -> None:
    cred = make(client_assertion_func=lambda: "")
    with pytest.raises(ConfigError, match=r"^OnBehalfOfCredential: client_assertion_func is invalid"):
        fetch(cred, FunctionResult(""))


def test_a_certificate_signs_a_new_assertion_per_request_and_is_parsed_once() -> None:
    pair = certs.leaf()
    now = [NOW]
    emulator = EntraEmulator(clock=lambda: now[0])
    app = emulator.add_app(TENANT, CLIENT)
    app.add_certificate(pair.cert_pem)
    assertion = emulator.user_token(TENANT, CLIENT, upn="ada@contoso.com", oid="oid-ada")
    cred = make(client_certificate=pair.pem(b"pw"), password="pw", user_assertion=assertion)
    token_call = call()
    first = run(cred.fetch_flow(token_call, cred.cache_key(token_call), NOW), emulator)  # type: ignore[arg-type]
    assert cred._signer is not None
    parsed = cred._signer.certificate
    assert parsed is not None
    now[0] += 1
    second = run(cred.fetch_flow(token_call, cred.cache_key(token_call), now[0]), emulator)  # type: ignore[arg-type]
    assert cred._signer.certificate is parsed
    assert emulator.decode(first.token)["upn"] == emulator.decode(second.token)["upn"] == "ada@contoso.com"
    sent = [dict(fields(r)) for r in emulator.requests]
    assert [f["grant_type"] for f in sent] == [OBO, "refresh_token"]
    assert sent[0]["client_assertion"] != sent[1]["client_assertion"]
    header = jwt.get_unverified_header(sent[0]["client_assertion"])
    assert (header["alg"], header["x5t#S256"]) == ("PS256", pair.x5t_s256)
    assert jwt.decode(sent[0]["client_assertion"], options={"verify_signature": False})["aud"] == URL


def test_a_certificate_for_adfs_signs_rs256_with_x5t() -> None:
    pair = certs.leaf()
    cred = OnBehalfOfCredential(
        "adfs",
        CLIENT,
        user_assertion=USER_ASSERTION,
        client_certificate=pair.pfx(),
        authority="https://adfs.contoso.local",
        env={},
    )
    endpoint = "https://adfs.contoso.local/adfs/oauth2/token"
    discovery = HttpResponse(200, (), json.dumps({"token_endpoint": endpoint}).encode())
    _, io = fetch(cred, discovery, reply())
    assertion = dict(fields(io.seen[1]))["client_assertion"]
    header = jwt.get_unverified_header(assertion)
    assert (header["alg"], header["x5t"]) == ("RS256", pair.x5t)


def test_unreadable_certificate_bytes_are_a_config_error_at_the_first_request() -> None:
    cred = make(client_certificate=b"not a certificate", password=b"pw")
    with pytest.raises(ConfigError, match=r"^OnBehalfOfCredential: client_certificate is invalid"):
        fetch(cred)


# -- construction --


def noop() -> str:
    return CLIENT_ASSERTION


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"client_secret": None}, "client authentication"),
        ({"client_secret": SECRET, "client_assertion_func": noop}, "client authentication"),
        (
            {"client_secret": SECRET, "client_certificate": b"x", "client_assertion_func": noop},
            "client authentication",
        ),
        ({"client_secret": ""}, "client_secret"),
        ({"client_secret": 7}, "client_secret"),
        ({"client_certificate": b""}, "client_certificate"),
        ({"client_certificate": "pem text"}, "client_certificate"),
        ({"client_assertion_func": "not callable"}, "client_assertion_func"),
        ({"client_secret": SECRET, "password": "pw"}, "password"),
        ({"client_certificate": b"x", "password": 7}, "password"),
        ({"user_assertion": ""}, "user_assertion"),
        ({"user_assertion": None}, "user_assertion"),
        ({"request_timeout": 0}, "request_timeout"),
    ],
)
def test_config_errors(kwargs: dict[str, Any], option: str) -> None:
    kwargs.setdefault("env", {})
    kwargs.setdefault("user_assertion", USER_ASSERTION)
    with pytest.raises(ConfigError) as caught:
        OnBehalfOfCredential(TENANT, CLIENT, **kwargs)
    assert str(caught.value).startswith(f"OnBehalfOfCredential: {option} is invalid")
    assert SECRET not in str(caught.value)
    assert USER_ASSERTION not in str(caught.value)


def test_exactly_one_message_names_what_was_given() -> None:
    with pytest.raises(ConfigError, match=r"\(client_secret, client_assertion_func given\)$"):
        make(client_secret=SECRET, client_assertion_func=noop)
    with pytest.raises(ConfigError, match=r"\(none given\)$"):
        OnBehalfOfCredential(TENANT, CLIENT, user_assertion=USER_ASSERTION, env={})


def test_the_cache_key_holds_the_assertion_digest_never_the_assertion() -> None:
    cred = make()
    key = cred.cache_key(call())
    assert key == ((SCOPE,), TENANT, False, f"obo:https://login.microsoftonline.com:{CLIENT}:{DIGEST}")
    assert USER_ASSERTION not in repr(key)
    other = make(user_assertion=USER_ASSERTION + "x")
    assert other.cache_key(call())[3] != key[3]


def test_repr_names_the_client_auth_and_no_secret() -> None:
    assert repr(make()) == (
        f"OnBehalfOfCredential(tenant_id='{TENANT}', client_id='{CLIENT}', "
        "authority='https://login.microsoftonline.com', client_auth='client_secret')"
    )
    assert repr(make(client_assertion_func=noop)).endswith("client_auth='client_assertion_func')")
    assert repr(make(client_certificate=b"x")).endswith("client_auth='client_certificate')")


def test_no_secret_in_errors_reprs_or_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    password = "cert-Passw0rd"
    values = (SECRET, USER_ASSERTION, REFRESH, password)
    cred = make()
    echo = {
        "error": "invalid_grant",
        "error_description": f"AADSTS50013: {USER_ASSERTION} {SECRET} {REFRESH}",
    }
    errors: list[AzidError] = []
    with caplog.at_level(logging.DEBUG, logger="azid"):
        fetch(cred, reply(refresh_token=REFRESH))
        fetch(cred, reply(refresh_token=REFRESH))  # the refresh form, logged
        with pytest.raises(AuthError) as refused:
            fetch(cred, reply(400, **echo), reply(400, **echo))
        errors.append(refused.value)
        with pytest.raises(CredentialUnavailableError) as unreachable:
            fetch(
                make(),
                TransportError("connect", f"refused {SECRET}"),
                None,
                TransportError("connect", "x"),
                None,
                TransportError("connect", "x"),
                None,
                TransportError("connect", "x"),
            )
        errors.append(unreachable.value)
        pem = make(client_certificate=b"junk " + password.encode(), password=password)
        with pytest.raises(ConfigError) as garbled:
            fetch(pem)
        errors.append(garbled.value)
    assert caplog.records
    texts = [caplog.text, repr(cred), str(cred), repr(pem)]
    texts += [str(e) for e in errors] + [repr(vars(e)) for e in errors]
    for text in texts:
        for value in values:
            assert value not in text


def test_pickles_without_refresh_tokens_cache_or_certificate() -> None:
    cred = make(client_certificate=certs.leaf().pfx(b"pw"), password=b"pw")
    emulator = EntraEmulator(clock=lambda: NOW)
    emulator.add_app(TENANT, CLIENT).add_certificate(certs.leaf().cert_pem)
    cred._user_assertion = emulator.user_token(TENANT, CLIENT, upn="u@contoso.com", oid="oid-u")
    token_call = call()
    run(cred.fetch_flow(token_call, cred.cache_key(token_call), NOW), emulator)  # type: ignore[arg-type]
    assert cred._refresh_tokens
    assert cred._signer is not None
    assert cred._signer.certificate is not None
    copy = pickle.loads(pickle.dumps(cred))
    assert copy._signer is not None
    assert (copy._refresh_tokens, copy._signer.certificate, len(copy.token_cache)) == ({}, None, 0)
    assert copy.cache_key(token_call) == cred.cache_key(token_call)


# -- the emulator's delegated grants --


@pytest.fixture
def emulator() -> EntraEmulator:
    emulator = EntraEmulator(clock=lambda: NOW)
    emulator.add_app(TENANT, CLIENT, SECRET)
    return emulator


def emulated(
    emulator: EntraEmulator, cred: OnBehalfOfCredential, token_call: TokenCall | None = None
) -> AccessTokenInfo:
    token_call = token_call or call()
    return run(cred.fetch_flow(token_call, cred.cache_key(token_call), NOW), emulator)  # type: ignore[arg-type]


def user(emulator: EntraEmulator, **kwargs: Any) -> str:
    kwargs.setdefault("upn", "ada@contoso.com")
    kwargs.setdefault("oid", "oid-ada")
    return emulator.user_token(kwargs.pop("tenant", TENANT), kwargs.pop("audience", CLIENT), **kwargs)


def test_the_emulator_issues_a_delegated_token_and_refreshes_it(emulator: EntraEmulator) -> None:
    cred = make(user_assertion=user(emulator))
    info = emulated(
        emulator, cred, call("https://graph.microsoft.com/User.Read", "https://graph.microsoft.com/Mail.Read")
    )
    claims = emulator.decode(info.token)
    assert (claims["aud"], claims["scp"], claims["upn"], claims["oid"], claims["tid"], claims["appid"]) == (
        "https://graph.microsoft.com",
        "User.Read Mail.Read",
        "ada@contoso.com",
        "oid-ada",
        TENANT,
        CLIENT,
    )
    again = emulated(emulator, cred)
    assert emulator.decode(again.token)["scp"] == "user_impersonation"
    assert [dict(fields(r))["grant_type"] for r in emulator.requests] == [OBO, "refresh_token"]
    # Revoked refresh tokens: invalid_grant, and the credential asks on behalf of the user again.
    emulator.refresh_tokens.clear()
    emulated(emulator, cred)
    assert [dict(fields(r))["grant_type"] for r in emulator.requests[2:]] == ["refresh_token", OBO]


def test_the_emulator_answers_with_refresh_id_token_and_client_info(emulator: EntraEmulator) -> None:
    form = dict(obo_fields())
    form["assertion"] = user(emulator)
    status, document = post(emulator, form)
    assert status == 200
    assert document["refresh_token"] in emulator.refresh_tokens
    assert emulator.decode(document["id_token"])["preferred_username"] == "ada@contoso.com"
    info = json.loads(base64.urlsafe_b64decode(document["client_info"] + "=="))
    assert info == {"uid": "oid-ada", "utid": TENANT}
    assert document["scope"] == SCOPE


def post(emulator: EntraEmulator, form: dict[str, str], tenant: str = TENANT) -> tuple[int, dict[str, Any]]:
    from urllib.parse import urlencode

    url = f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
    response = emulator(HttpRequest("POST", url, body=urlencode(form).encode()))
    return response.status, json.loads(response.body)


@pytest.mark.parametrize(
    ("change", "status", "error", "code"),
    [
        ({"requested_token_use": "other"}, 400, "invalid_request", 900144),
        ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        ({"client_id": "nobody"}, 400, "unauthorized_client", 700016),
        ({"assertion": "garbage"}, 400, "invalid_grant", 50013),
        ({"assertion": "audience"}, 400, "invalid_grant", 50013),
        ({"assertion": "tenant"}, 400, "invalid_grant", 50013),
        ({"assertion": "app-token"}, 400, "invalid_grant", 50013),
        ({"assertion": "expired"}, 400, "invalid_grant", 500133),
        ({"scope": "User.Read"}, 400, "invalid_scope", 70011),
        ({"scope": "openid profile"}, 400, "invalid_scope", 70011),
        ({"scope": "https://a/x https://b/y"}, 400, "invalid_scope", 70011),
    ],
)
def test_the_emulator_refuses_bad_obo_requests(
    emulator: EntraEmulator, change: dict[str, str], status: int, error: str, code: int
) -> None:
    emulator.add_app("tenant-b", "other-app", "s")
    form = dict(obo_fields())
    form["assertion"] = user(emulator)
    assertions = {
        "audience": user(emulator, audience="other-app"),
        "tenant": user(emulator, tenant="tenant-b"),
        "app-token": emulator.sign({"aud": CLIENT, "exp": int(NOW) + 60, "tid": TENANT}),
        "expired": emulator.sign({**emulator.decode(form["assertion"]), "exp": int(NOW)}),
    }
    form.update(change)
    form["assertion"] = assertions.get(form["assertion"], form["assertion"])
    got_status, body = post(emulator, form)
    assert (got_status, body["error"], body["error_codes"]) == (status, error, [code])


def test_the_emulator_refuses_unknown_or_foreign_refresh_tokens(emulator: EntraEmulator) -> None:
    form = dict(obo_fields())
    form["assertion"] = user(emulator)
    _, issued = post(emulator, form)
    refresh = dict(refresh_fields(issued["refresh_token"]))
    assert post(emulator, refresh)[0] == 200
    assert post(emulator, {**refresh, "refresh_token": "unknown"})[1]["error_codes"] == [9002313]
    emulator.add_app(TENANT, "app-b", "s")
    assert post(emulator, {**refresh, "client_id": "app-b"})[1]["error_codes"] == [70000]
    assert post(emulator, refresh, tenant="tenant-c")[1]["error_codes"] == [70000]
    # A confidential client's refresh token needs the client's proof.
    assert post(emulator, {k: v for k, v in refresh.items() if k != "client_secret"})[1]["error_codes"] == [
        7000215
    ]


def test_the_emulator_still_refuses_other_grants(emulator: EntraEmulator) -> None:
    status, body = post(emulator, {"grant_type": "authorization_code", "client_id": CLIENT})
    assert (status, body["error"], body["error_codes"]) == (400, "unsupported_grant_type", [70003])
