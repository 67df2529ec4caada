"""ClientAssertionCredential and `assertion_from` as core objects (PROTOCOL.md §2, §2.1, §7.1)."""

from __future__ import annotations

import json
import logging
import pickle
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import pytest

from azid_core.acquire import TokenCall
from azid_core.drive import run
from azid_core.effects import FunctionCall, FunctionResult, HttpRequest, HttpResponse
from azid_core.entra.assertion import JWT_BEARER, ClientAssertionCredential, assertion_from
from azid_core.errors import (
    AuthError,
    AzidError,
    ConfigError,
    CredentialUnavailableError,
    NotConfiguredError,
    ProtocolError,
    TransportError,
)
from azid_core.testing import ScriptedIO

if TYPE_CHECKING:
    from azid_core.effects import Reply
    from azid_core.tokens import AccessTokenInfo

NOW = 1_700_000_000.0
TENANT, CLIENT = "tenant-a", "client-a"
SCOPE = "https://vault.azure.net/.default"
ASSERTION = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2lnbmF0dXJl"
TOKEN_REPLY = HttpResponse(200, (), json.dumps({"access_token": "at-1", "expires_in": 3600}).encode())


def get_assertion() -> str:
    return ASSERTION


def make(func: Any = get_assertion, **kwargs: Any) -> ClientAssertionCredential:
    kwargs.setdefault("env", {})
    return ClientAssertionCredential(TENANT, CLIENT, func, **kwargs)


def fetch(
    cred: ClientAssertionCredential, *replies: Reply | BaseException, claims: str | None = None
) -> tuple[AccessTokenInfo, ScriptedIO]:
    io = ScriptedIO(*replies)
    token_call = TokenCall((SCOPE,), claims, None, False)
    info = run(cred.fetch_flow(token_call, cred.cache_key(token_call), NOW), io)
    assert io.unused == 0
    return info, io


def failing(*replies: Reply | BaseException, cred: ClientAssertionCredential | None = None) -> AzidError:
    cred = cred or make()
    io = ScriptedIO(*replies)
    token_call = TokenCall((SCOPE,), None, None, False)
    with pytest.raises(AzidError) as caught:
        run(cred.fetch_flow(token_call, cred.cache_key(token_call), NOW), io)
    assert io.unused == 0
    return caught.value


def test_the_function_is_called_through_the_adapter_and_the_form_is_in_wire_order() -> None:
    cred = make()
    info, io = fetch(cred, FunctionResult(ASSERTION), TOKEN_REPLY)
    call_effect, request = io.seen
    assert isinstance(call_effect, FunctionCall)
    assert call_effect.function is get_assertion
    assert call_effect.purpose == "assertion"
    assert repr(call_effect) == "FunctionCall(assertion)"
    # Replies never show what user code returned: it is an assertion.
    assert repr(FunctionResult(ASSERTION)) == "FunctionResult(returned)"
    assert repr(FunctionResult(error=ValueError(ASSERTION))) == "FunctionResult(raised ValueError)"
    assert isinstance(request, HttpRequest)
    assert request.url == f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
    assert parse_qsl(request.body.decode()) == [
        ("client_assertion", ASSERTION),
        ("client_assertion_type", JWT_BEARER),
        ("client_id", CLIENT),
        ("grant_type", "client_credentials"),
        ("scope", SCOPE),
    ]
    assert info.token == "at-1"
    assert info.source == "ClientAssertionCredential"


def test_claims_are_the_last_field() -> None:
    claims = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'
    _, io = fetch(make(), FunctionResult(ASSERTION), TOKEN_REPLY, claims=claims)
    request = io.seen[1]
    assert isinstance(request, HttpRequest)
    assert parse_qsl(request.body.decode())[-1] == ("claims", claims)


def test_identity_has_the_assert_prefix() -> None:
    key = make(authority="login.microsoftonline.us").cache_key(TokenCall((SCOPE,), None, None, False))
    assert key == ((SCOPE,), TENANT, False, f"assert:https://login.microsoftonline.us:{CLIENT}")


@pytest.mark.parametrize("func", [None, "eyJ.not-callable", 42])
def test_a_function_that_is_not_callable_is_a_config_error(func: Any) -> None:
    with pytest.raises(ConfigError, match=r"^ClientAssertionCredential: func is invalid: a callable"):
        make(func)


def test_base_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="client_id"):
        ClientAssertionCredential(TENANT, "", get_assertion, env={})


@pytest.mark.parametrize(
    ("value", "shown"), [("", "an empty string"), (None, "NoneType"), (42, "int"), (b"eyJ", "bytes")]
)
def test_a_result_that_is_not_a_non_empty_string_is_a_config_error(value: Any, shown: str) -> None:
    error = failing(FunctionResult(value))
    assert type(error) is ConfigError
    assert str(error) == (
        f"ClientAssertionCredential: func is invalid: it returned {shown}, not a non-empty string"
    )


def test_a_raising_function_is_an_auth_error_with_the_cause_chained() -> None:
    raised = ValueError(f"vault said no; stale {ASSERTION}")
    error = failing(FunctionResult(error=raised))
    assert type(error) is AuthError
    assert str(error) == (
        "ClientAssertionCredential: the assertion function raised ValueError: vault said no; stale ****"
    )
    assert error.__cause__ is raised


def test_an_unavailable_error_from_the_function_stays_unavailable() -> None:
    raised = NotConfiguredError("ManagedIdentityCredential: no identity here", login_command="az login")
    error = failing(FunctionResult(error=raised))
    assert type(error) is NotConfiguredError
    assert isinstance(error, CredentialUnavailableError)
    assert error.login_command == "az login"
    assert str(error) == (
        "ClientAssertionCredential: the assertion function raised NotConfiguredError: "
        "ManagedIdentityCredential: no identity here"
    )
    assert error.args == (str(error),)
    assert error.__cause__ is raised
    assert str(raised) == "ManagedIdentityCredential: no identity here"  # the user's error is left alone


def test_an_auth_error_from_the_function_keeps_its_fields() -> None:
    raised = AuthError("inner refused", status=401, error="invalid_client")
    error = failing(FunctionResult(error=raised))
    assert type(error) is AuthError
    assert (error.status, error.error) == (401, "invalid_client")
    assert error.__cause__ is raised


def test_a_transport_error_from_the_function_does_not_escape_as_one() -> None:
    raised = TransportError("connect", "refused")
    error = failing(FunctionResult(error=raised))
    assert type(error) is AuthError
    assert error.__cause__ is raised


def test_a_reply_that_is_not_a_function_result_is_an_adapter_bug() -> None:
    error = failing(HttpResponse(200))
    assert type(error) is AzidError
    assert "FunctionCall(assertion)" in str(error)
    assert "HttpResponse" in str(error)


def test_assertion_from_names_the_owner_option_and_purpose() -> None:
    def func() -> str:
        return "x"

    flow = assertion_from(func, owner="OnBehalfOfCredential", purpose="client assertion", option="cb")
    effect = next(flow)
    assert effect == FunctionCall(func, "client assertion")
    with pytest.raises(ConfigError, match=r"^OnBehalfOfCredential: cb is invalid: it returned int"):
        flow.send(FunctionResult(7))
    flow = assertion_from(func, owner="OnBehalfOfCredential", purpose="client assertion")
    next(flow)
    with pytest.raises(AuthError, match=r"^OnBehalfOfCredential: the client assertion function raised"):
        flow.send(FunctionResult(error=RuntimeError("x")))


def test_the_assertion_appears_in_no_message_repr_or_log(caplog: pytest.LogCaptureFixture) -> None:
    cred = make()
    echo = {"error": "invalid_client", "error_description": f"AADSTS700027: bad assertion {ASSERTION}"}
    refusal = HttpResponse(401, (), json.dumps(echo).encode())
    with caplog.at_level(logging.DEBUG, logger="azid"):
        error = failing(FunctionResult(ASSERTION), refusal, cred=cred)
        garbled = failing(FunctionResult(ASSERTION), HttpResponse(200, (), f"<{ASSERTION}>".encode()))
    assert isinstance(error, AuthError)
    assert isinstance(garbled, ProtocolError)
    assert caplog.records  # DEBUG records were written
    for text in (str(error), repr(error), repr(error.__dict__), str(garbled), repr(cred), caplog.text):
        assert ASSERTION not in text
    assert repr(cred) == (
        f"ClientAssertionCredential(tenant_id='{TENANT}', client_id='{CLIENT}', "
        "authority='https://login.microsoftonline.com')"
    )


def test_pickles_without_its_cache() -> None:
    cred = make()
    fetch(cred, FunctionResult(ASSERTION), TOKEN_REPLY)
    copy = pickle.loads(pickle.dumps(cred))
    assert copy._func is get_assertion
    assert len(copy.token_cache) == 0
