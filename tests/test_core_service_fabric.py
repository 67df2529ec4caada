"""The Service Fabric source as a core flow (PROTOCOL.md §4.2, §4.3, §4.7, §10 item 15): the request
exactly, the thumbprint's forms, the pin on every request, `token_sha256_to_refresh`, and errors."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import pytest

from azid_core.drive import run
from azid_core.effects import HttpRequest, HttpResponse, Sleep
from azid_core.errors import (
    AuthError,
    AzidError,
    ConfigError,
    CredentialUnavailableError,
    NotConfiguredError,
    ProtocolError,
    TransportError,
)
from azid_core.managed_identity.common import Selector, SourceCall
from azid_core.managed_identity.service_fabric import service_fabric_flow, service_fabric_source
from azid_core.testing import ScriptedIO

if TYPE_CHECKING:
    from azid_core.effects import Reply

NOW = 1_700_000_000.0
ENDPOINT = "https://10.0.0.4:2377/metadata/identity/oauth2/token"
HEADER = "sf-Identity-Header-0123456789"
THUMBPRINT = "0123456789abcdef0123456789abcdef01234567"
PIN = bytes.fromhex(THUMBPRINT)
REQUEST_ID = "00010203-0405-4607-8809-0a0b0c0d0e0f"
CALL = SourceCall(
    resource="https://vault.azure.net",
    selector=None,
    claims=None,
    cached_token=None,
    in_chain=False,
    user_agent="azid/test",
    request_id=REQUEST_ID,
    timeout=30.0,
)
SOURCE = service_fabric_source(ENDPOINT, HEADER, THUMBPRINT)


def token_reply(**fields: Any) -> HttpResponse:
    body = {"access_token": "at-sf", "expires_on": int(NOW) + 3600, "token_type": "Bearer", **fields}
    return HttpResponse(200, (), json.dumps(body).encode())


def error_reply(status: int, code: str, message: str = "no such thing") -> HttpResponse:
    body = {"error": {"code": code, "message": message, "correlationId": "c-1"}}
    return HttpResponse(status, (("x-ms-request-id", "svc-9"),), json.dumps(body).encode())


def go(*replies: Reply | BaseException, call: SourceCall = CALL) -> tuple[Any, ScriptedIO]:
    io = ScriptedIO(*replies)
    try:
        result: Any = run(service_fabric_flow(SOURCE, call, now=NOW), io)
    except AzidError as exc:
        result = exc
        assert HEADER not in str(exc)
    assert io.unused == 0
    return result, io


def only_request(io: ScriptedIO) -> HttpRequest:
    (request,) = io.seen
    assert isinstance(request, HttpRequest)
    return request


def test_the_request_exactly() -> None:
    token, io = go(token_reply(expires_in=60))
    assert (token.token, token.expires_on, token.source) == (
        "at-sf",
        int(NOW) + 3600,  # expires_on before expires_in (§4.2)
        "ManagedIdentityCredential:service_fabric",
    )
    request = only_request(io)
    assert request.method == "GET"
    assert request.url == f"{ENDPOINT}?api-version=2019-07-01-preview&resource=https%3A%2F%2Fvault.azure.net"
    assert request.headers == (
        ("User-Agent", "azid/test"),
        ("x-ms-client-request-id", REQUEST_ID),
        ("Accept", "application/json"),
        ("Secret", HEADER),
    )
    assert request.body == b""
    assert request.pin_sha1 == PIN
    assert request.bypass_proxy  # pinned requests never go through a proxy (§0.1), even off loopback
    assert (request.timeout, request.connect_timeout) == (30.0, 5.0)


def test_an_expiry_as_a_string_is_read_too() -> None:
    token, _ = go(token_reply(expires_on=str(int(NOW) + 7200)))
    assert token.expires_on == int(NOW) + 7200


@pytest.mark.parametrize(
    ("claims", "cached", "sent"),
    [
        ('{"access_token":{"nbf":{"essential":true}}}', "old-token", True),
        ('{"access_token":{"nbf":{"essential":true}}}', None, False),
        (None, "old-token", False),
        ("", "old-token", False),
    ],
)
def test_token_sha256_to_refresh_only_with_claims_and_a_cached_token(
    claims: str | None, cached: str | None, sent: bool
) -> None:
    _, io = go(token_reply(), call=CALL._replace(claims=claims, cached_token=cached))
    url = only_request(io).url
    digest = hashlib.sha256(b"old-token").hexdigest()
    assert url.endswith(f"&token_sha256_to_refresh={digest}") is sent
    assert ("token_sha256_to_refresh" in url) is sent
    assert "old-token" not in url


@pytest.mark.parametrize(
    "thumbprint",
    [
        THUMBPRINT,
        THUMBPRINT.upper(),
        ":".join(THUMBPRINT[i : i + 2] for i in range(0, 40, 2)).upper(),
        " ".join(THUMBPRINT[i : i + 2] for i in range(0, 40, 2)),
        f"\t{THUMBPRINT[:20]}\r\n{THUMBPRINT[20:]} ",
    ],
    ids=["lower", "upper", "colons", "spaces", "tab-crlf"],
)
def test_thumbprint_forms(thumbprint: str) -> None:
    assert service_fabric_source(ENDPOINT, HEADER, thumbprint).pin_sha1 == PIN


@pytest.mark.parametrize(
    "thumbprint",
    [
        THUMBPRINT[:-1],
        THUMBPRINT + "0",
        THUMBPRINT[:-1] + "g",
        "",
        "0x" + THUMBPRINT[2:],
        THUMBPRINT[:-2] + "-1",
    ],
    ids=["39", "41", "non-hex", "empty", "0x", "dash"],
)
def test_a_bad_thumbprint_is_a_config_error_naming_the_variable_only(thumbprint: str) -> None:
    with pytest.raises(ConfigError, match="IDENTITY_SERVER_THUMBPRINT is invalid") as caught:
        service_fabric_source(ENDPOINT, HEADER, thumbprint)
    assert HEADER not in str(caught.value)
    assert not thumbprint or thumbprint not in str(caught.value)


@pytest.mark.parametrize("endpoint", ["http://10.0.0.4:2377/token", "10.0.0.4:2377/token", "https:///token"])
def test_the_endpoint_must_be_https(endpoint: str) -> None:
    with pytest.raises(
        ConfigError, match="IDENTITY_ENDPOINT is invalid: Service Fabric requires an https URL"
    ):
        service_fabric_source(endpoint, HEADER, THUMBPRINT)


@pytest.mark.parametrize("header", ["", "bad\nheader-value", "héader"])
def test_the_identity_header_must_be_printable_ascii(header: str) -> None:
    with pytest.raises(ConfigError, match="IDENTITY_HEADER is invalid") as caught:
        service_fabric_source(ENDPOINT, header, THUMBPRINT)
    assert not header or header not in str(caught.value)


def test_the_repr_hides_the_header() -> None:
    assert HEADER not in repr(SOURCE)
    assert THUMBPRINT in repr(SOURCE)


def test_a_pin_mismatch_is_an_auth_error_and_not_retried() -> None:
    result, io = go(TransportError("pin_mismatch", "peer certificate sha1 ab:cd"))
    assert isinstance(result, AuthError)
    assert "certificate does not match IDENTITY_SERVER_THUMBPRINT" in str(result)
    assert str(result).startswith("ManagedIdentityCredential (service_fabric): ")
    assert result.error == "pin_mismatch"
    assert isinstance(result.__cause__, TransportError)
    assert only_request(io).pin_sha1 == PIN


def test_managed_identity_not_found_is_not_configured() -> None:
    for status in (400, 404):
        result, _ = go(error_reply(status, "ManagedIdentityNotFound", "The application has no identity"))
        assert type(result) is NotConfiguredError
        assert "The application has no identity" in str(result)
        assert f"HTTP {status}" in str(result)


def test_other_errors_carry_error_code() -> None:
    result, _ = go(error_reply(403, "SecretHeaderNotFound", f"bad secret {HEADER}"))
    assert isinstance(result, AuthError)
    assert (result.status, result.error, result.request_id) == (403, "SecretHeaderNotFound", REQUEST_ID)
    assert "svc-9" in str(result)
    assert "bad secret ****" in str(result)
    result, _ = go(HttpResponse(403, (), b"forbidden"))
    assert isinstance(result, AuthError)
    assert result.error is None
    result, _ = go(HttpResponse(403, (), b'{"error": "flat"}'))
    assert isinstance(result, AuthError)
    assert result.error is None
    result, _ = go(HttpResponse(400, (), b'{"error": {"code": "BadRequest"}}'))
    assert type(result) is NotConfiguredError
    result, _ = go(HttpResponse(200, (), b'{"error": {"code": "ManagedIdentityNotFound"}}'))
    assert isinstance(result, ProtocolError)


def test_policy_s_and_transport_failures() -> None:
    result, io = go(error_reply(503, "Busy"), None, error_reply(500, "Busy"), None, token_reply())
    assert result.token == "at-sf"
    assert [e.seconds for e in io.seen if isinstance(e, Sleep)] == [0.0, 1.6]
    assert all(e.pin_sha1 == PIN for e in io.seen if isinstance(e, HttpRequest))
    refused = TransportError("connect", "refused")
    result, io = go(refused, None, refused, None, refused, None, refused)
    assert type(result) is CredentialUnavailableError
    result, io = go(refused, call=CALL._replace(in_chain=True))
    assert type(result) is CredentialUnavailableError
    assert len(io.seen) == 1
    result, _ = go(TransportError("tls", f"handshake failed near {HEADER}"))
    assert type(result) is CredentialUnavailableError
    assert "(tls)" in str(result)


def test_a_selector_is_a_config_error() -> None:
    result, io = go(call=CALL._replace(selector=Selector("client_id", "c-1")))
    assert isinstance(result, ConfigError)
    assert "no user-assigned identities" in str(result)
    assert io.seen == []
