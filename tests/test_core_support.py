"""Effects and replies, the package surface, the body cap, logging, and the test doubles."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

import azid_core
from azid_core import effects, transport
from azid_core.effects import (
    MIB,
    AwaitFlight,
    CommandResult,
    FileContent,
    HttpRequest,
    HttpResponse,
    ReadFile,
    RunCommand,
    Sleep,
)
from azid_core.errors import TransportError
from azid_core.logs import debug
from azid_core.testing import EntraEmulator, ScriptedIO
from azid_core.testing.entra import JWT_BEARER

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from azid_core.effects import Effect

NOW = 1_700_000_000.0


class FakeEvent:
    def set(self) -> None:
        pass


# -- effects --


def test_http_request_defaults_and_repr() -> None:
    request = HttpRequest("GET", "https://h/p")
    assert (request.headers, request.body, request.timeout, request.connect_timeout) == ((), b"", 30.0, None)
    assert (request.max_response_bytes, request.bypass_proxy, request.pin_sha1) == (MIB, False, None)
    assert (request.tls_server_name, request.ca_pem) == (None, None)
    assert MIB == 1 << 20
    assert repr(request) == "HttpRequest(GET https://h/p, 0 body bytes)"
    secretive = HttpRequest(
        "POST",
        "https://h/p?api-version=1&resource=https://vault&client_id=abc&flag",
        headers=(("Authorization", "Bearer tok"),),
        body=b"client_secret=s3cret",
    )
    assert (
        repr(secretive)
        == "HttpRequest(POST https://h/p?api-version=…&resource=…&client_id=…&flag=…, 20 body bytes)"
    )
    assert "s3cret" not in repr(secretive)
    assert "tok" not in repr(secretive)
    assert repr(HttpRequest("GET", "https://h/p?")) == "HttpRequest(GET https://h/p, 0 body bytes)"


def test_http_response_header_and_repr() -> None:
    response = HttpResponse(
        429, (("Retry-After", "5"), ("retry-after", "6"), ("X-Other", "o")), b"secret body"
    )
    assert response.header("retry-after") == "5"
    assert response.header("RETRY-AFTER") == "5"
    assert response.header("x-other") == "o"
    assert response.header("missing") is None
    assert repr(response) == "HttpResponse(429, 11 body bytes)"
    assert HttpResponse(204).headers == ()
    assert HttpResponse(204).body == b""


def test_other_effects_and_replies() -> None:
    command = RunCommand(("az", "account", "get-access-token", "--secret-arg"))
    assert (command.cwd, command.env, command.timeout, command.max_output_bytes) == (None, (), 10.0, MIB)
    assert repr(command) == "RunCommand('az', 3 arguments)"
    assert repr(RunCommand(())) == "RunCommand('', -1 arguments)"
    result = CommandResult(0, b"token-output", b"err")
    assert repr(result) == "CommandResult(0, 12+3 output bytes)"
    read = ReadFile("/var/run/token")
    assert (read.max_bytes, read.unless_mtime_ns, read.nofollow) == (MIB, None, False)
    content = FileContent(b"secret-file", 11, 123)
    assert repr(content) == "FileContent(11 bytes, mtime_ns=123)"
    assert Sleep(1.5).seconds == 1.5
    event = FakeEvent()
    assert AwaitFlight(event).event is event


def test_effects_are_immutable() -> None:
    request = HttpRequest("GET", "u")
    with pytest.raises(AttributeError):
        request.url = "v"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        Sleep(1).seconds = 2  # type: ignore[misc]
    assert set(effects.__all__) >= {"HttpRequest", "HttpResponse", "Sleep", "AwaitFlight"}


# -- the package surface --


def test_lazy_names_resolve_to_their_homes() -> None:
    # What users construct and catch, plus the effects for adapter authors: kept small.
    assert len(azid_core.__all__) <= 45  # 42 since issue 8 added the developer tools and the chains
    assert dir(azid_core) == sorted(azid_core.__all__)
    import importlib

    for name in azid_core.__all__:
        value = azid_core.__getattr__(name)
        home = importlib.import_module(f"azid_core.{azid_core._HOMES[name]}")
        assert value is getattr(home, name)
        assert getattr(azid_core, name) is value
    assert set(azid_core._HOMES) == set(azid_core.__all__)


def test_unknown_name() -> None:
    with pytest.raises(AttributeError, match="module 'azid_core' has no attribute 'Nope'"):
        azid_core.__getattr__("Nope")
    with pytest.raises(AttributeError):
        _ = azid_core.DefinitelyMissing


# -- the body cap adapters share --


def test_body_buffer() -> None:
    buffer = transport.BodyBuffer(10)
    assert buffer.getvalue() == b""
    buffer.add(b"12345")
    buffer.add(b"")
    buffer.add(b"67890")
    assert buffer.getvalue() == b"1234567890"
    with pytest.raises(TransportError) as info:
        buffer.add(b"x")
    assert info.value.kind == "too_large"
    assert str(info.value) == "too_large: the response body is over 10 bytes"
    assert buffer.getvalue() == b"1234567890"


@pytest.mark.parametrize("length", [None, "", "10", " 10 ", "0", "abc", "-20", "1e9", "10.5", "0x20"])
def test_body_buffer_expect_accepts_lengths_within_the_limit_or_unreadable(length: str | None) -> None:
    buffer = transport.BodyBuffer(10)
    buffer.expect(length)
    buffer.add(b"x" * 10)
    assert buffer.getvalue() == b"x" * 10


@pytest.mark.parametrize("length", ["11", " 11", "99999999999999999999"])
def test_body_buffer_expect_rejects_declared_lengths_over_the_limit(length: str) -> None:
    buffer = transport.BodyBuffer(10)
    with pytest.raises(TransportError) as info:
        buffer.expect(length)
    assert info.value.kind == "too_large"
    assert str(info.value) == "too_large: the response body is over 10 bytes"


@pytest.mark.parametrize(
    "length",
    [
        "\u00b2",  # superscript two: str.isdigit() says yes, int() raises
        "\u00b9\u00b2\u00b3",
        "\u0661\u0662\u0663",  # Arabic-Indic 123: int() reads it, but it is no HTTP length
        "\uff11\uff12\uff13",  # fullwidth 123
        "1\u00b2",
    ],
)
def test_body_buffer_expect_ignores_lengths_that_are_not_ascii_digits(length: str) -> None:
    buffer = transport.BodyBuffer(10)
    buffer.expect(length)
    buffer.add(b"x" * 10)
    assert buffer.getvalue() == b"x" * 10
    with pytest.raises(TransportError, match="too_large"):
        buffer.add(b"x")


def test_body_buffer_expect_with_a_huge_declared_length() -> None:
    buffer = transport.BodyBuffer(10)
    with pytest.raises(TransportError) as info:
        buffer.expect("9" * 5000)
    assert info.value.kind == "too_large"


def test_body_buffer_one_big_chunk() -> None:
    buffer = transport.BodyBuffer(3)
    with pytest.raises(TransportError):
        buffer.add(b"abcd")


# -- logging --


def test_debug_logs_under_azid(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="azid")
    debug("http", "%s %d", "GET", 200)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("azid.http", logging.DEBUG, "GET 200")
    ]


def test_debug_is_silent_above_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="azid")
    debug("http", "hidden")
    assert caplog.records == []


# -- ScriptedIO --


def test_scripted_io() -> None:
    error = TransportError("connect", "refused")
    response = HttpResponse(200)
    io = ScriptedIO(response, error, None)
    assert io.unused == 3
    first: Effect = HttpRequest("GET", "u")
    assert io(first) is response
    with pytest.raises(TransportError) as info:
        io(Sleep(1))
    assert info.value is error
    assert io(Sleep(2)) is None
    assert io.unused == 0
    assert io.seen == [first, Sleep(1), Sleep(2)]
    with pytest.raises(AssertionError, match="no reply left"):
        io(Sleep(3))
    assert len(io.seen) == 4


# -- EntraEmulator --


TOKEN_URL = "https://login.example/tenant-a/oauth2/v2.0/token"


def post(emulator: EntraEmulator, url: str = TOKEN_URL, **form: str) -> HttpResponse:
    from urllib.parse import urlencode

    fields = {
        "client_id": "app-a",
        "grant_type": "client_credentials",
        "client_secret": "s",
        "scope": "api://x/.default",
    }
    fields.update(form)
    return emulator(HttpRequest("POST", url, body=urlencode(fields).encode()))


def body_of(response: HttpResponse) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(response.body)
    return value


@pytest.fixture
def emulator(signing_key: RSAPrivateKey) -> EntraEmulator:
    em = EntraEmulator(clock=lambda: NOW, signing_key=signing_key)
    app = em.add_app("tenant-a", "app-a", "s")
    assert (app.tenant_id, app.client_id, app.client_secret) == ("tenant-a", "app-a", "s")
    assert em.apps[("tenant-a", "app-a")] is app
    return em


def test_emulator_issues_tokens(emulator: EntraEmulator) -> None:
    response = post(emulator)
    assert response.status == 200
    assert response.header("content-type") == "application/json; charset=utf-8"
    body = body_of(response)
    assert (body["token_type"], body["expires_in"], body["ext_expires_in"]) == ("Bearer", 3600, 3600)
    assert "refresh_in" not in body
    claims = emulator.decode(body["access_token"])
    assert claims["aud"] == "api://x"
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (int(NOW), int(NOW) - 300, int(NOW) + 3600)
    app = emulator.apps[("tenant-a", "app-a")]
    assert (claims["appid"], claims["tid"], claims["oid"], claims["sub"], claims["uti"]) == (
        "app-a",
        "tenant-a",
        app.object_id,
        app.object_id,
        "emulator-1",
    )
    assert claims["iss"] == "https://sts.windows.net/tenant-a/"
    assert "xms_cc" not in claims
    assert emulator.issued == 1
    assert emulator.token_requests == 1


def test_emulator_options_and_cae(emulator: EntraEmulator) -> None:
    emulator.token_lifetime = 600
    emulator.refresh_in = 300
    body = body_of(post(emulator, claims='{"access_token": {"xms_cc": {"values": ["CP1"]}}}'))
    assert (body["expires_in"], body["refresh_in"]) == (600, 300)
    assert emulator.decode(body["access_token"])["xms_cc"] == ["CP1"]
    plain = body_of(post(emulator, claims='{"access_token": {}}'))
    assert "xms_cc" not in emulator.decode(plain["access_token"])


@pytest.mark.parametrize(
    ("form", "url", "status", "error", "code"),
    [
        ({"grant_type": "authorization_code"}, TOKEN_URL, 400, "unsupported_grant_type", 70003),
        ({}, "https://login.example/tenant-z/oauth2/v2.0/token", 400, "invalid_request", 90002),
        ({"client_id": "app-z"}, TOKEN_URL, 400, "unauthorized_client", 700016),
        ({"client_secret": "wrong"}, TOKEN_URL, 401, "invalid_client", 7000215),
        ({"scope": "api://x"}, TOKEN_URL, 400, "invalid_scope", 1002012),
        ({"scope": "a/.default b/.default"}, TOKEN_URL, 400, "invalid_scope", 1002012),
        ({}, "https://login.example/tenant-a/oauth2/v2.0/nowhere", 404, "not_found", 0),
    ],
)
def test_emulator_errors(
    emulator: EntraEmulator, form: dict[str, str], url: str, status: int, error: str, code: int
) -> None:
    response = post(emulator, url, **form)
    assert response.status == status
    body = body_of(response)
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert body["trace_id"] == f"00000000-0000-0000-0000-{len(emulator.requests):012d}"
    assert body["correlation_id"] == "11111111-1111-1111-1111-111111111111"
    assert body["timestamp"] == "2026-11-27 12:00:00Z"
    assert emulator.issued == 0


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"client_assertion": "x.y.z", "client_assertion_type": "urn:other"}, 400, 50027),
        ({"client_assertion": "not a jwt", "client_assertion_type": JWT_BEARER}, 400, 50027),
    ],
)
def test_emulator_refuses_a_malformed_client_assertion(
    emulator: EntraEmulator, fields: dict[str, str], status: int, code: int
) -> None:
    response = post(emulator, **fields)
    assert (response.status, body_of(response)["error_codes"]) == (status, [code])


def test_emulator_get_is_not_found(emulator: EntraEmulator) -> None:
    response = emulator(HttpRequest("GET", TOKEN_URL))
    assert response.status == 404
    assert emulator.token_requests == 0
    assert len(emulator.requests) == 1


def test_emulator_fail_next(emulator: EntraEmulator) -> None:
    emulator.fail_next(503, "busy", (("Retry-After", "1"),))
    emulator.fail_next(500, b"\xff raw")
    emulator.fail_next(400, {"error": "invalid_grant"}, (("X-Extra", "1"),))
    first = post(emulator)
    assert (first.status, first.body, first.headers) == (503, b"busy", (("Retry-After", "1"),))
    assert post(emulator).body == b"\xff raw"
    third = post(emulator)
    assert third.headers == (("Content-Type", "application/json; charset=utf-8"), ("X-Extra", "1"))
    assert body_of(third) == {"error": "invalid_grant"}
    assert post(emulator).status == 200
    assert emulator.token_requests == 4
    assert emulator.issued == 1


def test_emulator_clock_is_read_per_token(signing_key: RSAPrivateKey) -> None:
    times = iter([NOW, NOW + 100])
    em = EntraEmulator(clock=lambda: next(times), token_lifetime=60, signing_key=signing_key)
    em.add_app("tenant-a", "app-a", "s")
    exps = [em.decode(body_of(post(em))["access_token"])["exp"] for _ in range(2)]
    assert exps == [int(NOW) + 60, int(NOW) + 160]
