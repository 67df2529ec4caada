"""Scopes, claims and CAE (PROTOCOL.md §0.2, §1.4)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azid_core.errors import ConfigError
from azid_core.options import check_scopes, merge_claims

CP1 = '{"access_token": {"xms_cc": {"values": ["CP1"]}}}'


# -- scopes --


@pytest.mark.parametrize(
    "scopes",
    [
        ("https://vault.azure.net/.default",),
        ("https://graph.microsoft.com/User.Read", "openid", "offline_access"),
        ("api://1234/.default",),
        ("b", "a", "b"),
    ],
)
def test_check_scopes_returns_them_in_caller_order(scopes: tuple[str, ...]) -> None:
    assert check_scopes(scopes, owner="TestCred") is scopes


def test_check_scopes_requires_at_least_one() -> None:
    with pytest.raises(ConfigError) as info:
        check_scopes((), owner="TestCred")
    assert str(info.value) == "TestCred: scopes is invalid: at least one scope is required"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "two words",
        " lead",
        "trail ",
        "tab\there",
        "new\nline",
        "nul\x00",
        "bell\x07",
        "del\x7f",
        "nbsp\xa0x",
    ],
)
def test_check_scopes_rejects_whitespace_and_control_characters(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_scopes(("https://vault.azure.net/.default", bad), owner="TestCred")
    assert str(info.value).startswith("TestCred: scopes is invalid: ")
    assert repr(bad) in str(info.value)


def test_check_scopes_rejects_non_strings() -> None:
    with pytest.raises(ConfigError):
        check_scopes((b"https://vault.azure.net/.default",), owner="TestCred")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        check_scopes((None,), owner="TestCred")  # type: ignore[arg-type]


@pytest.mark.parametrize("control", ["\x80", "\x85", "\x9b", "\x9f"])
def test_check_scopes_rejects_c1_control_characters(control: str) -> None:
    bad = f"https://vault.azure.net/.default{control}31m"
    with pytest.raises(ConfigError) as info:
        check_scopes((bad,), owner="TestCred")
    assert str(info.value) == (
        f"TestCred: scopes is invalid: {bad!r} is empty or holds whitespace or control characters"
    )
    assert control not in str(info.value)  # shown escaped: no raw terminal control in the message


@pytest.mark.parametrize("scope", ["api://x/caf\u00e9", "a\u00a1", "https://h/\u00ff"])
def test_check_scopes_accepts_printable_non_ascii(scope: str) -> None:
    assert check_scopes((scope,), owner="TestCred") == (scope,)


# -- claims and CAE --


def test_without_cae_claims_are_sent_verbatim() -> None:
    weird = '{ "access_token" : {"nbf":{"essential":true}} }'
    assert merge_claims(weird, enable_cae=False, owner="TestCred") == weird
    # Not even parsed: anything the caller got from a challenge goes through as is.
    assert merge_claims("not json", enable_cae=False, owner="TestCred") == "not json"
    assert merge_claims(None, enable_cae=False, owner="TestCred") is None
    assert merge_claims("", enable_cae=False, owner="TestCred") is None


def test_cae_vector_with_claims() -> None:
    claims = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}'
    assert merge_claims(claims, enable_cae=True, owner="TestCred") == (
        '{"access_token": {"nbf": {"essential": true, "value": "1700000000"}, "xms_cc": {"values": ["CP1"]}}}'
    )


def test_cae_vector_alone() -> None:
    assert merge_claims(None, enable_cae=True, owner="TestCred") == CP1
    assert merge_claims("", enable_cae=True, owner="TestCred") == CP1
    assert merge_claims("{}", enable_cae=True, owner="TestCred") == CP1


def test_cae_keeps_key_order_and_other_members() -> None:
    claims = json.dumps(
        {
            "id_token": {"auth_time": {"essential": True}},
            "access_token": {"z": 1, "xms_cc": {"values": ["old"]}, "a": 2},
            "userinfo": {},
        },
        separators=(",", ":"),
    )
    merged = merge_claims(claims, enable_cae=True, owner="TestCred")
    assert merged == (
        '{"id_token": {"auth_time": {"essential": true}}, '
        '"access_token": {"z": 1, "xms_cc": {"values": ["CP1"]}, "a": 2}, "userinfo": {}}'
    )
    # A claims object without access_token gets one at the end.
    assert merge_claims('{"id_token":{}}', enable_cae=True, owner="TestCred") == (
        '{"id_token": {}, "access_token": {"xms_cc": {"values": ["CP1"]}}}'
    )


@pytest.mark.parametrize("claims", ["not json", "[1, 2]", '"text"', "42", "null", "{", "   "])
def test_cae_with_claims_that_are_not_a_json_object(claims: str) -> None:
    with pytest.raises(ConfigError) as info:
        merge_claims(claims, enable_cae=True, owner="TestCred")
    assert str(info.value) == "TestCred: claims is invalid: with enable_cae it must be a JSON object"


@pytest.mark.parametrize("access", ["[]", '"x"', "1", "null"])
def test_cae_with_an_access_token_member_that_is_not_an_object(access: str) -> None:
    with pytest.raises(ConfigError, match="access_token member must be a JSON object"):
        merge_claims('{"access_token": ' + access + "}", enable_cae=True, owner="TestCred")


@pytest.mark.parametrize(
    "claims", ["[" * 100_000, "[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000]
)
def test_cae_with_deeply_nested_claims_is_a_config_error(claims: str) -> None:
    with pytest.raises(ConfigError) as info:
        merge_claims(claims, enable_cae=True, owner="TestCred")
    assert str(info.value) == "TestCred: claims is invalid: with enable_cae it must be a JSON object"
    # Without CAE the claims are not parsed, so nesting does not matter.
    assert merge_claims(claims, enable_cae=False, owner="TestCred") == claims


# The rule as first written, a regular expression; check_scopes now reads ASCII with str methods.
_BAD_SCOPE_RULE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


@given(st.text(alphabet=st.characters(max_codepoint=0xA0)) | st.text())
def test_check_scopes_accepts_exactly_what_the_rule_does(scope: str) -> None:
    allowed = bool(scope) and not _BAD_SCOPE_RULE.search(scope)
    try:
        check_scopes((scope,), owner="TestCred")
    except ConfigError:
        assert not allowed
    else:
        assert allowed
