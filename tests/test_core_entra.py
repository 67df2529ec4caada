"""The Entra token request and reply (PROTOCOL.md §1.5, §1.6, §2, secret grant)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import pytest

from azid_core.acquire import TokenCall
from azid_core.drive import run
from azid_core.effects import HttpRequest, HttpResponse, Sleep
from azid_core.entra.confidential import ClientSecretCredential
from azid_core.entra.endpoint import EntraRequest, parse_error_reply, parse_token_reply, token_request_flow
from azid_core.errors import AuthError, AzidError, CredentialUnavailableError, ProtocolError, TransportError
from azid_core.testing import EntraEmulator, ScriptedIO
from azid_core.tokens import AccessTokenInfo

if TYPE_CHECKING:
    from azid_core.effects import Reply

NOW = 1_700_000_000.0
SECRET = "Sup3r~Secret.Value_42"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "11111111-2222-3333-4444-555555555555"
SCOPE = "https://vault.azure.net/.default"
REQUEST_ID = "00010203-0405-4607-8809-0a0b0c0d0e0f"
PYTHON = ".".join(str(part) for part in sys.version_info[:3])
OWNER = "ClientSecretCredential"
SERVICE = "Microsoft Entra ID"


def entropy(size: int) -> bytes:
    return bytes(range(size))


def credential(**kwargs: Any) -> ClientSecretCredential:
    kwargs.setdefault("env", {})
    kwargs.setdefault("entropy", entropy)
    return ClientSecretCredential(TENANT, CLIENT, SECRET, **kwargs)


def call(
    *scopes: str, claims: str | None = None, tenant_id: str | None = None, cae: bool = False
) -> TokenCall:
    return TokenCall(scopes or (SCOPE,), claims, tenant_id, cae)


def fetch(
    cred: ClientSecretCredential, token_call: TokenCall, *replies: Reply | BaseException
) -> tuple[AccessTokenInfo, ScriptedIO]:
    io = ScriptedIO(*replies)
    info = run(cred.fetch_flow(token_call, cred.cache_key(token_call), NOW), io)
    assert io.unused == 0
    return info, io


def json_reply(status: int, body: dict[str, Any]) -> HttpResponse:
    return HttpResponse(status, (("Content-Type", "application/json"),), json.dumps(body).encode())


def token_reply(**body: Any) -> HttpResponse:
    body.setdefault("access_token", "tok.en-1")
    if "expires_on" not in body:
        body.setdefault("expires_in", 3600)
    body.setdefault("token_type", "Bearer")
    return json_reply(200, body)


def parse(resp: HttpResponse, *, now: float = NOW) -> AccessTokenInfo:
    return parse_token_reply(resp, owner=OWNER, now=now, secrets=(SECRET,), request_id=REQUEST_ID)


def parse_fails(resp: HttpResponse) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse(resp)
    assert SECRET not in str(info.value)
    return info.value


# -- the request (§2 secret grant, §0.4) --


def test_request_url_headers_body_and_timeouts() -> None:
    cred = credential(env={"AZURE_HTTP_USER_AGENT": "myapp/2"})
    info, io = fetch(cred, call(SCOPE, "openid"), token_reply())
    assert info.token == "tok.en-1"
    [request] = io.seen
    assert isinstance(request, HttpRequest)
    assert request.method == "POST"
    assert request.url == f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
    assert request.headers == (
        ("User-Agent", f"azid/0.1.0 Python/{PYTHON} ({sys.platform}) myapp/2"),
        ("x-ms-client-request-id", REQUEST_ID),
        ("client-request-id", REQUEST_ID),
        ("Accept", "application/json"),
        ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
    )
    assert dict(request.headers)["Content-Type"] == "application/x-www-form-urlencoded; charset=utf-8"
    assert (
        request.body
        == (
            f"client_id={CLIENT}&grant_type=client_credentials&client_info=1"
            "&client_secret=Sup3r~Secret.Value_42&scope=https%3A%2F%2Fvault.azure.net%2F.default+openid"
        ).encode()
    )
    assert (request.timeout, request.connect_timeout) == (30.0, 10.0)
    assert request.max_response_bytes == 1 << 20
    assert (request.bypass_proxy, request.pin_sha1, request.tls_server_name, request.ca_pem) == (
        False,
        None,
        None,
        None,
    )
    assert SECRET not in repr(request)


def test_scopes_are_sent_in_caller_order() -> None:
    _, io = fetch(credential(), call("b", "a", "c"), token_reply())
    request = io.seen[0]
    assert isinstance(request, HttpRequest)
    assert request.body.endswith(b"&scope=b+a+c")


def test_claims_are_the_last_field() -> None:
    claims = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}'
    _, io = fetch(credential(), call(claims=claims, cae=True), token_reply())
    request = io.seen[0]
    assert isinstance(request, HttpRequest)
    merged = (
        '{"access_token": {"nbf": {"essential": true, "value": "1700000000"}, "xms_cc": {"values": ["CP1"]}}}'
    )
    from urllib.parse import parse_qsl

    fields = parse_qsl(request.body.decode(), keep_blank_values=True)
    assert [name for name, _ in fields] == [
        "client_id",
        "grant_type",
        "client_info",
        "client_secret",
        "scope",
        "claims",
    ]
    assert fields[-1] == ("claims", merged)
    # Without CAE the claims go verbatim; with neither there is no claims field.
    _, io = fetch(credential(), call(claims=claims), token_reply())
    assert isinstance(io.seen[0], HttpRequest)
    assert parse_qsl(io.seen[0].body.decode())[-1] == ("claims", claims)
    _, io = fetch(credential(), call(), token_reply())
    assert isinstance(io.seen[0], HttpRequest)
    assert b"claims" not in io.seen[0].body


def test_tenant_authority_and_timeouts_from_options() -> None:
    cred = credential(
        authority="https://login.contoso.local/root/",
        additionally_allowed_tenants=["tenant-b"],
        request_timeout=5,
    )
    _, io = fetch(cred, call(tenant_id="tenant-b"), token_reply())
    request = io.seen[0]
    assert isinstance(request, HttpRequest)
    assert request.url == "https://login.contoso.local/root/tenant-b/oauth2/v2.0/token"
    assert (request.timeout, request.connect_timeout) == (5.0, 5.0)
    cred = credential(env={"AZURE_AUTHORITY_HOST": "login.microsoftonline.us"}, request_timeout=45.5)
    _, io = fetch(cred, call(), token_reply())
    request = io.seen[0]
    assert isinstance(request, HttpRequest)
    assert request.url.startswith("https://login.microsoftonline.us/")
    assert (request.timeout, request.connect_timeout) == (45.5, 10.0)


def test_request_id_is_kept_across_retries_and_new_per_request() -> None:
    counter = iter(range(256))

    def fresh(size: int) -> bytes:
        return bytes([next(counter)]) * size

    cred = credential(entropy=fresh)
    _, io = fetch(cred, call(), json_reply(503, {}), None, token_reply())
    first, pause, second = io.seen
    assert pause == Sleep(0.0)
    assert isinstance(first, HttpRequest)
    assert first == second
    _, io = fetch(cred, call(), token_reply())
    third = io.seen[0]
    assert isinstance(third, HttpRequest)
    assert dict(third.headers)["x-ms-client-request-id"] != dict(first.headers)["x-ms-client-request-id"]
    assert dict(third.headers)["client-request-id"] == dict(third.headers)["x-ms-client-request-id"]


def test_default_entropy_makes_distinct_uuid4s() -> None:
    cred = ClientSecretCredential(TENANT, CLIENT, SECRET, env={})
    ids = []
    for _ in range(2):
        _, io = fetch(cred, call(), token_reply())
        request = io.seen[0]
        assert isinstance(request, HttpRequest)
        ids.append(dict(request.headers)["x-ms-client-request-id"])
    assert ids[0] != ids[1]
    import uuid

    assert all(uuid.UUID(value).version == 4 for value in ids)


def test_token_request_flow_directly() -> None:
    request = EntraRequest(
        owner="Custom",
        url="https://h/t/oauth2/v2.0/token",
        fields=[("grant_type", "x y"), ("a", "b")],
        secrets=("zzz",),
        user_agent="ua/1",
        timeout=3.0,
    )
    io = ScriptedIO(token_reply(expires_in=7200))
    info = run(token_request_flow(request, now=NOW, entropy=entropy), io)
    assert info == AccessTokenInfo("tok.en-1", int(NOW) + 7200, refresh_on=int(NOW) + 3600, source="Custom")
    sent = io.seen[0]
    assert isinstance(sent, HttpRequest)
    assert sent.body == b"grant_type=x+y&a=b"
    assert dict(sent.headers)["User-Agent"] == "ua/1"
    assert (sent.timeout, sent.connect_timeout) == (3.0, 3.0)


def test_emulator_round_trip() -> None:
    emulator = EntraEmulator(clock=lambda: NOW, refresh_in=1200)
    emulator.add_app(TENANT, CLIENT, SECRET)
    cred = credential()
    token_call = call()
    info = run(cred.fetch_flow(token_call, cred.cache_key(token_call), NOW), emulator)  # type: ignore[arg-type]
    assert info.expires_on == int(NOW) + 3600
    assert info.refresh_on == int(NOW) + 1200
    assert emulator.decode(info.token)["appid"] == CLIENT
    assert emulator.token_requests == 1


# -- reading a token (§1.6, §0.6) --


def test_success_with_numeric_expires_in() -> None:
    info = parse(token_reply(expires_in=3600))
    assert info == AccessTokenInfo(
        "tok.en-1", int(NOW) + 3600, token_type="Bearer", refresh_on=None, source=OWNER
    )


def test_success_with_string_expires_in_and_fractional_now() -> None:
    info = parse(token_reply(expires_in="3599"), now=NOW + 0.9)
    assert info.expires_on == int(NOW) + 3599


def test_expires_in_wins_over_expires_on() -> None:
    info = parse(token_reply(expires_in=600, expires_on=int(NOW) + 9999))
    assert info.expires_on == int(NOW) + 600


@pytest.mark.parametrize(
    "value", [int(NOW) + 1800, str(int(NOW) + 1800), "2023-11-14T22:43:20Z", "11/14/2023 10:43:20 PM +00:00"]
)
def test_expires_on_fallback(value: Any) -> None:
    info = parse(token_reply(expires_on=value))
    assert info.expires_on == int(NOW) + 1800


def test_refresh_in_becomes_refresh_on() -> None:
    assert parse(token_reply(expires_in=3600, refresh_in=1800)).refresh_on == int(NOW) + 1800
    assert parse(token_reply(expires_in=3600, refresh_in="1800")).refresh_on == int(NOW) + 1800
    assert parse(token_reply(expires_in=3600, refresh_in=0)).refresh_on is None
    assert parse(token_reply(expires_in=3600, refresh_in=-1)).refresh_on is None
    assert parse(token_reply(expires_in=3600, refresh_in=3600)).refresh_on is None
    assert parse(token_reply(expires_in=86400, refresh_in=86400)).refresh_on == int(NOW) + 43200
    assert parse(token_reply(expires_in=86400)).refresh_on == int(NOW) + 43200
    assert parse(token_reply(expires_in=7200)).refresh_on == int(NOW) + 3600
    assert parse(token_reply(expires_in=7199)).refresh_on is None


def test_issue_time_is_the_clock_after_the_last_sleep() -> None:
    info, _ = fetch(credential(), call(), json_reply(503, {}), NOW + 42, token_reply(expires_in=3600))
    assert info.expires_on == int(NOW) + 42 + 3600
    info, _ = fetch(
        credential(),
        call(),
        HttpResponse(429, (("Retry-After", "7"),)),
        None,
        token_reply(expires_in=7200),
    )
    assert info.expires_on == int(NOW) + 7 + 7200
    assert info.refresh_on == int(NOW) + 7 + 3600


@pytest.mark.parametrize(
    ("token_type", "expected"),
    [("Bearer", "Bearer"), ("pop", "pop"), ("", "Bearer"), (None, "Bearer"), (5, "Bearer")],
)
def test_token_type(token_type: Any, expected: str) -> None:
    assert parse(token_reply(token_type=token_type)).token_type == expected
    body = {"access_token": "t", "expires_in": 60}
    assert parse(json_reply(200, body)).token_type == "Bearer"


@pytest.mark.parametrize("status", [200, 201, 203, 299])
def test_any_2xx_is_success(status: int) -> None:
    assert parse(json_reply(status, {"access_token": "t", "expires_in": 60})).token == "t"


def test_access_token_length_limits() -> None:
    assert parse(token_reply(access_token="x" * 65536)).token == "x" * 65536
    assert parse(token_reply(access_token="!~")).token == "!~"
    error = parse_fails(token_reply(access_token="x" * 65537))
    assert error.field == "access_token"


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        (None, "missing"),
        ("", "not 1 to 65536 printable ASCII characters"),
        ("has space", "not 1 to 65536 printable ASCII characters"),
        ("tab\t", "not 1 to 65536 printable ASCII characters"),
        ("del\x7f", "not 1 to 65536 printable ASCII characters"),
        ("ünïcode", "not 1 to 65536 printable ASCII characters"),
        (12345, "not 1 to 65536 printable ASCII characters"),
        (["a"], "not 1 to 65536 printable ASCII characters"),
    ],
)
def test_bad_access_token(token: Any, problem: str) -> None:
    body: dict[str, Any] = {"expires_in": 3600}
    if token is not None:
        body["access_token"] = token
    error = parse_fails(json_reply(200, body))
    assert (error.source, error.field) == (SERVICE, "access_token")
    assert str(error) == f"{OWNER}: cannot read the {SERVICE} reply: access_token: {problem}"
    # The token value is never shown.
    if isinstance(token, str) and token:
        assert token not in str(error)
    assert parse_fails(json_reply(200, {"access_token": None, "expires_in": 1})).field == "access_token"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 200),
        (b"<html><body>Sign in</body></html>", 200),
        (b"not json", 200),
        (b"[1, 2]", 200),
        (b'"text"', 204),
        (b"\xff\xfe\x00garbage", 200),
        (b"[" * 100_000, 200),
    ],
)
def test_2xx_that_is_not_a_json_object(body: bytes, status: int) -> None:
    error = parse_fails(HttpResponse(status, (), body))
    assert (error.source, error.field) == (SERVICE, "body")
    assert str(error).startswith(f"{OWNER}: cannot read the {SERVICE} reply: body: not a JSON object: ")
    assert len(str(error)) < 700
    if not body:
        assert str(error).endswith(": empty")


def test_non_json_2xx_excerpt_is_masked() -> None:
    body = f"<html>{SECRET} eyJhbGciOi.eyJzdWIi.c2ln {'x' * 1000}</html>".encode()
    error = parse_fails(HttpResponse(200, (), body))
    assert "****" in str(error)
    assert "eyJzdWIi" not in str(error)
    assert str(error).endswith("…")


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"access_token": "t"}, "expires_in", "missing (and no expires_on)"),
        ({"access_token": "t", "expires_in": "soon"}, "expires_in", "not a number of seconds"),
        ({"access_token": "t", "expires_in": True}, "expires_in", "not a number of seconds"),
        ({"access_token": "t", "expires_in": None}, "expires_in", "not a number of seconds"),
        ({"access_token": "t", "expires_in": 0}, "expires_in", "0 is not positive"),
        ({"access_token": "t", "expires_in": -60}, "expires_in", "-60 is not positive"),
        ({"access_token": "t", "expires_in": "0.5"}, "expires_in", "0 is not positive"),
        (
            {"access_token": "t", "expires_in": 1e300},
            "expires_in",
            "over 64 digits seconds is beyond year 9999",
        ),
        (
            {"access_token": "t", "expires_in": 10**12},
            "expires_in",
            "1000000000000 seconds is beyond year 9999",
        ),
        # Within parse_lifetime's bound, but NOW + expires_in is past year 9999.
        ({"access_token": "t", "expires_in": 253402300799}, "expires_in", "255102300799 is beyond year 9999"),
        ({"access_token": "t", "expires_in": "\u00b9\u00b2"}, "expires_in", "not a number of seconds"),
        ({"access_token": "t", "expires_on": 10**70}, "expires_on", "a number of over 64 digits is beyond"),
        ({"access_token": "t", "expires_in": 60, "refresh_in": -(10**20)}, "refresh_in", "beyond year 9999"),
        # An invalid first choice is an error, not a fallback to expires_on.
        ({"access_token": "t", "expires_in": "x", "expires_on": 2e9}, "expires_in", "not a number"),
        ({"access_token": "t", "expires_on": "tomorrow"}, "expires_on", "not an expiry time"),
        ({"access_token": "t", "expires_on": 1000}, "expires_on", "already past"),
        ({"access_token": "t", "expires_on": int(NOW)}, "expires_on", "already past"),
        ({"access_token": "t", "expires_on": False}, "expires_on", "not an expiry time"),
        ({"access_token": "t", "expires_in": 60, "refresh_in": "soon"}, "refresh_in", "not a number"),
        ({"access_token": "t", "expires_in": 60, "refresh_in": None}, "refresh_in", "not a number"),
    ],
)
def test_bad_expiry(body: dict[str, Any], field: str, problem: str) -> None:
    error = parse_fails(json_reply(200, body))
    assert (error.source, error.field) == (SERVICE, field)
    assert str(error).startswith(f"{OWNER}: cannot read the {SERVICE} reply: {field}: ")
    assert problem in str(error)


def test_the_largest_expires_in_that_fits() -> None:
    lifetime = 253402300799 - int(NOW)  # expires exactly at the end of year 9999
    info = parse(token_reply(expires_in=lifetime))
    assert info.expires_on == 253402300799
    error = parse_fails(token_reply(expires_in=lifetime + 1))
    assert (
        str(error)
        == f"{OWNER}: cannot read the {SERVICE} reply: expires_in: 253402300800 is beyond year 9999"
    )


@pytest.mark.parametrize(("field", "digits"), [("expires_in", 400), ("refresh_in", 400), ("expires_on", 400)])
def test_huge_json_numbers_are_protocol_errors(field: str, digits: int) -> None:
    extra = b'"expires_in": 60, ' if field == "refresh_in" else b""
    body = b'{"access_token": "t", ' + extra + f'"{field}": '.encode() + b"9" * digits + b"}"
    error = parse_fails(HttpResponse(200, (), body))
    assert error.field == field
    problem = "a number of over 64 digits" + (" seconds" if field != "expires_on" else "")
    assert str(error) == f"{OWNER}: cannot read the {SERVICE} reply: {field}: {problem} is beyond year 9999"


def test_huge_numeric_string_expires_in_is_a_protocol_error() -> None:
    error = parse_fails(HttpResponse(200, (), b'{"access_token": "t", "expires_in": "' + b"9" * 400 + b'"}'))
    assert error.field == "expires_in"
    assert str(error) == (
        f"{OWNER}: cannot read the {SERVICE} reply: expires_in: not a number of seconds: '{'9' * 29}…(masked)"
    )


@pytest.mark.parametrize(
    ("field", "problem"),
    [
        ("expires_on", "not an expiry time"),
        ("expires_in", "not a number of seconds"),
        ("refresh_in", "not a number of seconds"),
    ],
)
def test_bad_expiry_values_do_not_show_a_secret(field: str, problem: str) -> None:
    body: dict[str, Any] = {"access_token": "t", field: f"in {SECRET}!"}
    if field == "refresh_in":
        body["expires_in"] = 60
    error = parse_fails(json_reply(200, body))
    assert str(error) == f"{OWNER}: cannot read the {SERVICE} reply: {field}: {problem}: 'in ****!'"
    # A JWT-shaped value is masked too, even without being one of the credential's secrets.
    body[field] = "eyJhbGciOi.eyJzdWIi.c2ln"
    error = parse_fails(json_reply(200, body))
    assert str(error).endswith(f"{field}: {problem}: '****'")


def test_a_secret_among_the_digits_of_a_number_is_masked() -> None:
    # The number is shown masked: a credential secret made of digits does not leak through it.
    body = {"access_token": "t", "expires_on": 1424242424242424}
    with pytest.raises(ProtocolError) as info:
        parse_token_reply(json_reply(200, body), owner=OWNER, now=NOW, secrets=("42424242",))
    assert (
        str(info.value)
        == f"{OWNER}: cannot read the {SERVICE} reply: expires_on: 1****4242424 is beyond year 9999"
    )


# -- reading an error (§1.5) --


ERROR_BODY = {
    "error": "invalid_client",
    "error_description": (
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the "
        "client secret value.\r\nTrace ID: 2f5c0b0a-1111-4444-8888-000000000001\r\nCorrelation ID: c-1"
    ),
    "error_codes": [7000215],
    "timestamp": "2026-11-27 12:00:00Z",
    "trace_id": "2f5c0b0a-1111-4444-8888-000000000001",
    "correlation_id": "c0ffee00-1111-4444-8888-000000000002",
    "error_uri": "https://login.microsoftonline.com/error?code=7000215",
    "claims": '{"access_token":{"capolids":{"essential":true,"values":["x"]}}}',
}


def auth_error(resp: HttpResponse) -> AuthError:
    with pytest.raises(AuthError) as info:
        parse(resp)
    assert SECRET not in str(info.value)
    return info.value


def test_error_reply_fields_and_message() -> None:
    error = auth_error(json_reply(401, ERROR_BODY))
    assert type(error) is AuthError
    assert error.status == 401
    assert error.error == "invalid_client"
    assert error.error_codes == (7000215,)
    assert error.description == ERROR_BODY["error_description"]
    assert error.trace_id == "2f5c0b0a-1111-4444-8888-000000000001"
    assert error.correlation_id == "c0ffee00-1111-4444-8888-000000000002"
    assert error.timestamp == "2026-11-27 12:00:00Z"
    assert error.claims == ERROR_BODY["claims"]
    assert error.request_id == REQUEST_ID
    assert error.body_excerpt is None
    assert str(error) == (
        "ClientSecretCredential: Microsoft Entra ID refused the request (HTTP 401, invalid_client, "
        "AADSTS7000215): AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in "
        "the request is the client secret value. Trace ID 2f5c0b0a-1111-4444-8888-000000000001; "
        "correlation ID c0ffee00-1111-4444-8888-000000000002; 2026-11-27 12:00:00Z"
    )


def test_error_reply_with_only_an_error() -> None:
    error = auth_error(json_reply(400, {"error": "invalid_request"}))
    assert str(error) == (
        "ClientSecretCredential: Microsoft Entra ID refused the request (HTTP 400, invalid_request): "
        "no description in the reply."
    )
    assert (error.error_codes, error.description, error.trace_id, error.correlation_id, error.timestamp) == (
        (),
        None,
        None,
        None,
        None,
    )


def test_error_in_a_2xx_body_is_an_auth_error() -> None:
    error = auth_error(
        json_reply(200, {"error": "temporarily_unavailable", "access_token": "t", "expires_in": 60})
    )
    assert error.status == 200
    assert error.error == "temporarily_unavailable"


@pytest.mark.parametrize(
    ("codes", "description", "expected"),
    [
        ([50126, "70011"], "AADSTS1: x", (50126, 70011)),
        ([True, "x", None, 1.5], "AADSTS700016: app not found", (700016,)),  # nothing usable: description
        ("7000215", "AADSTS90002: tenant", (90002,)),  # not a list
        ([], "AADSTS12 then AADSTS34", (12,)),  # the first one
        (None, "no code here", ()),
        (None, None, ()),
        (["-5", "0042"], None, (42,)),
        # Codes must be plausible AADSTS numbers: 0 to 9999999999, ASCII digits.
        ([-3], None, ()),
        ([-3], "AADSTS50126: x", (50126,)),
        ([10**10, 9999999999, 0], None, (9999999999, 0)),
        (["12345678901", "0000000001", "9999999999"], None, (1, 9999999999)),
        (["\u0661\u0662", "\u00b2", "1\u00b2", " 12", "+12"], "AADSTS700016: x", (700016,)),
        ([10**400], "AADSTS90002: tenant", (90002,)),
        ([50126.0, "50126.0"], None, ()),
    ],
)
def test_error_codes(codes: Any, description: str | None, expected: tuple[int, ...]) -> None:
    body: dict[str, Any] = {"error": "e"}
    if codes is not None:
        body["error_codes"] = codes
    if description is not None:
        body["error_description"] = description
    error = auth_error(json_reply(400, body))
    assert error.error_codes == expected
    head = ", ".join(["HTTP 400", "e"] + [f"AADSTS{code}" for code in expected])
    assert f"({head})" in str(error)


def test_error_codes_with_superscript_digits() -> None:
    error = auth_error(json_reply(400, {"error": "e", "error_codes": ["\u00b2"]}))
    assert error.error_codes == ()
    assert str(error).startswith(f"{OWNER}: {SERVICE} refused the request (HTTP 400, e): ")


def test_aadsts_in_the_description_needs_ascii_digits() -> None:
    error = auth_error(
        json_reply(400, {"error": "e", "error_description": "AADSTS\u0665\u0660 then AADSTS7"})
    )
    assert error.error_codes == (7,)


def test_error_with_an_absurd_aadsts_number() -> None:
    # No crash (int() of 5000 digits would raise), and no code beyond ten digits.
    error = auth_error(json_reply(400, {"error": "e", "error_description": "AADSTS" + "1" * 5000}))
    assert all(0 <= code < 10**10 for code in error.error_codes)
    head = ", ".join(["HTTP 400", "e"] + [f"AADSTS{code}" for code in error.error_codes])
    assert str(error).startswith(f"{OWNER}: {SERVICE} refused the request ({head}): ")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 502, 503])
def test_non_2xx_with_a_json_body_without_error(status: int) -> None:
    error = auth_error(json_reply(status, {"message": "nope"}))
    assert error.status == status
    assert error.error is None
    assert str(error) == (
        f"ClientSecretCredential: Microsoft Entra ID refused the request (HTTP {status}): "
        "no description in the reply."
    )


def test_non_2xx_with_a_non_json_body() -> None:
    body = b"<html>\n<h1>502 Bad Gateway</h1>\n</html>"
    error = auth_error(HttpResponse(502, (), body))
    assert error.status == 502
    assert error.body_excerpt == body.decode()
    assert error.error is None
    assert error.error_codes == ()
    assert error.request_id == REQUEST_ID
    assert str(error) == "ClientSecretCredential: Microsoft Entra ID refused the request (HTTP 502): <html>."


@pytest.mark.parametrize("body", [b"", b"   \n  "])
def test_non_2xx_with_an_empty_body(body: bytes) -> None:
    error = auth_error(HttpResponse(503, (), body))
    assert error.body_excerpt == body.decode()
    assert str(error) == (
        "ClientSecretCredential: Microsoft Entra ID refused the request (HTTP 503): no details in the reply."
    )


def test_non_json_error_excerpt_is_masked_and_cut() -> None:
    body = (f"token={SECRET}&x " + "eyJhbGciOi.eyJzdWIi.c2ln " + "y" * 1000).encode()
    error = auth_error(HttpResponse(500, (), body))
    assert error.body_excerpt is not None
    assert len(error.body_excerpt) == 500
    assert SECRET not in error.body_excerpt
    assert "eyJzdWIi" not in error.body_excerpt
    assert error.body_excerpt.startswith("token=****&x ****")


def test_error_text_is_masked() -> None:
    body = {
        "error": "invalid_client",
        "error_description": f"secret {SECRET} rejected; token eyJhbGciOi.eyJzdWIi.c2ln",
        "trace_id": f"t-{SECRET}",
        "correlation_id": f"c-{SECRET}",
        "timestamp": f"ts-{SECRET}",
    }
    error = auth_error(json_reply(401, body))
    assert error.description == "secret **** rejected; token ****"
    assert str(error) == (
        "ClientSecretCredential: Microsoft Entra ID refused the request (HTTP 401, invalid_client): "
        "secret **** rejected; token ****. Trace ID t-****; correlation ID c-****; ts-****"
    )


def test_error_code_text_is_masked() -> None:
    error = auth_error(json_reply(401, {"error": f"bad {SECRET}", "error_description": "no"}))
    assert error.error == "bad ****"
    assert str(error) == f"{OWNER}: {SERVICE} refused the request (HTTP 401, bad ****): no."
    error = auth_error(json_reply(401, {"error": "eyJhbGciOi.eyJzdWIi.c2ln"}))
    assert error.error == "****"


@pytest.mark.parametrize(
    "key", ["error", "error_description", "trace_id", "correlation_id", "timestamp", "claims"]
)
def test_error_fields_that_are_not_strings_are_ignored(key: str) -> None:
    error = auth_error(json_reply(400, {"error": "e", key: 42} if key != "error" else {"error": 42}))
    assert getattr(error, "description" if key == "error_description" else key) is None


def test_parse_error_reply_parses_the_body_itself() -> None:
    error = parse_error_reply(json_reply(400, ERROR_BODY), owner="Other", secrets=())
    assert isinstance(error, AuthError)
    assert error.error == "invalid_client"
    assert error.request_id is None
    assert str(error).startswith("Other: Microsoft Entra ID refused the request (HTTP 400, invalid_client, ")
    plain = parse_error_reply(HttpResponse(404, (), b"Not Found"), owner="Other", secrets=())
    assert plain.body_excerpt == "Not Found"
    # A body the caller already parsed is used as is.
    given = parse_error_reply(HttpResponse(400, (), b"ignored"), owner="O", secrets=(), body={"error": "x"})
    assert given.error == "x"
    assert given.body_excerpt is None


def test_entra_refusal_through_the_flow() -> None:
    cred = credential()
    with pytest.raises(AuthError) as info:
        fetch(cred, call(), json_reply(401, ERROR_BODY))
    assert info.value.status == 401
    assert info.value.request_id == REQUEST_ID


@pytest.mark.parametrize("status", [400, 401, 502])
def test_entra_refusal_is_not_retried(status: int) -> None:
    with pytest.raises(AuthError):
        fetch(credential(), call(), json_reply(status, {"error": "x"}))


def test_retryable_refusal_reported_after_retries() -> None:
    busy = json_reply(503, {"error": "temporarily_unavailable"})
    with pytest.raises(AuthError) as info:
        fetch(credential(), call(), busy, None, busy, None, busy, None, busy)
    assert info.value.status == 503
    assert info.value.error == "temporarily_unavailable"


# -- transport failures --


@pytest.mark.parametrize("kind", ["timeout", "closed", "tls", "proxy", "pin_mismatch"])
def test_transport_failure_is_unavailable_with_the_cause(kind: str) -> None:
    failure = TransportError(kind, f"lost it while sending {SECRET}")
    with pytest.raises(CredentialUnavailableError) as info:
        fetch(credential(), call(), failure)
    error = info.value
    assert type(error) is CredentialUnavailableError
    assert error.__cause__ is failure
    assert str(error) == (
        f"ClientSecretCredential: Microsoft Entra ID at https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/"
        f"token could not be reached ({kind}): lost it while sending ****"
    )


def test_too_large_reply_is_a_protocol_error() -> None:
    failure = TransportError("too_large", "the response body is over 1048576 bytes")
    with pytest.raises(ProtocolError) as info:
        fetch(credential(), call(), failure)
    error = info.value
    assert (error.source, error.field) == (SERVICE, "body")
    assert error.__cause__ is failure
    assert str(error) == (
        f"{OWNER}: cannot read the {SERVICE} reply: body: the response body is over 1048576 bytes"
    )


def test_too_large_message_is_masked() -> None:
    with pytest.raises(ProtocolError) as info:
        fetch(credential(), call(), TransportError("too_large", f"over the limit after {SECRET}"))
    assert str(info.value) == f"{OWNER}: cannot read the {SERVICE} reply: body: over the limit after ****"


def test_connect_failures_are_retried_then_unavailable() -> None:
    failures = [TransportError("connect", f"refused {i}") for i in range(4)]
    io = ScriptedIO(failures[0], None, failures[1], None, failures[2], None, failures[3])
    cred = credential()
    token_call = call()
    with pytest.raises(CredentialUnavailableError, match=r"\(connect\): refused 3$") as info:
        run(cred.fetch_flow(token_call, cred.cache_key(token_call), NOW), io)
    assert info.value.__cause__ is failures[3]
    assert len(io.seen) == 7


def test_connect_failure_then_success() -> None:
    info, io = fetch(credential(), call(), TransportError("connect", "refused"), None, token_reply())
    assert info.token == "tok.en-1"
    assert len(io.seen) == 3


def test_driver_bug_is_an_azid_error() -> None:
    with pytest.raises(AzidError, match="not HttpResponse"):
        fetch(credential(), call(), None)


# -- the secret never shows --


def test_secret_never_in_repr_str_or_messages() -> None:
    cred = credential()
    assert SECRET not in repr(cred)
    assert SECRET not in str(cred)
    token_call = call()
    flow = cred.fetch_flow(token_call, cred.cache_key(token_call), NOW)
    request = next(flow)
    assert SECRET.encode() in request.body if isinstance(request, HttpRequest) else False
    assert SECRET not in repr(request)
    assert SECRET not in str(request)
    with pytest.raises(AuthError) as info:
        flow.send(json_reply(401, {"error": "invalid_client", "error_description": f"echo {SECRET}"}))
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert info.value.description is not None
    assert SECRET not in info.value.description
    flow.close()
