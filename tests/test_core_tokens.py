"""Expiry and lifetime parsing, refresh times, token types (PROTOCOL.md §0.2, §0.6, §7.2)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azid_core.errors import ProtocolError
from azid_core.tokens import (
    MAX_EPOCH,
    AccessToken,
    AccessTokenInfo,
    is_token_text,
    parse_expiry,
    parse_lifetime,
    refresh_time,
    token_from_json,
)

NOW = 1_700_000_000.0


def expiry(value: Any, *, now: float = 0.0, **kwargs: Any) -> int:
    return parse_expiry(value, field="expires_on", source="Some Service", owner="TestCred", now=now, **kwargs)


def utc_naive(text: str) -> float:
    """What `naive_to_epoch` does on a host whose local zone is UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


# -- parse_expiry: the vectors of §0.6 --


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # JSON numbers: epoch seconds, floored
        (42, 42),
        (1893553445.9, 1893553445),
        (0.0 + 43, 43),
        # numeric strings
        ("1586984735", 1586984735),
        ("1893553445.7", 1893553445),
        (" 1586984735 ", 1586984735),
        # ISO 8601 / RFC 3339 with Z or an offset; the fraction is truncated
        ("2038-01-18T00:00:00Z", 2147385600),
        ("2038-01-18T00:00:00.999999Z", 2147385600),
        ("2038-01-18t00:00:00z", 2147385600),
        ("2030-01-02T03:04:05+02:00", 1893546245),
        ("2030-01-02T03:04:05-08:00", 1893582245),
        # M/D/YYYY H:MM:SS ±HH:MM, 24-hour
        ("05/22/2021 17:14:33 +00:00", 1621703673),
        ("01/01/1970 00:00:42 +00:00", 42),
        ("06/20/2019 02:57:58 +00:00", 1560999478),
        ("6/20/2019 4:57:58 +02:00", 1560999478),
        ("6/19/2019 18:57:58 -08:00", 1560999478),
        # M/D/YYYY h:MM:SS AM|PM ±HH:MM; 12 AM is hour 0, 12 PM is noon
        ("11/28/2030 1:00:00 PM +00:00", 1922101200),
        ("1/1/1970 12:00:42 AM +00:00", 42),
        ("1/16/2020 5:24:12 AM +00:00", 1579152252),
        ("1/16/2020 5:24:12 am +00:00", 1579152252),
        ("1/1/1970 12:00:42 PM +00:00", 12 * 3600 + 42),
        ("11/28/2030 1:00:00 pm +00:00", 1922101200),
    ],
)
def test_parse_expiry_vectors(value: Any, expected: int) -> None:
    assert expiry(value) == expected


def test_az_local_form_only_with_naive_to_epoch() -> None:
    seen: list[str] = []

    def naive(text: str) -> float:
        seen.append(text)
        return utc_naive(text)

    assert expiry("2030-01-02 03:04:05.000000", naive_to_epoch=naive) == 1893553445
    assert expiry("2030-01-02 03:04:05", naive_to_epoch=naive) == 1893553445
    assert seen == ["2030-01-02 03:04:05.000000", "2030-01-02 03:04:05"]
    with pytest.raises(ProtocolError):
        expiry("2030-01-02 03:04:05.000000")


def test_naive_to_epoch_is_not_used_for_forms_with_an_offset() -> None:
    def naive(text: str) -> float:
        raise AssertionError("offset forms never reach naive_to_epoch")

    assert expiry("2038-01-18T00:00:00Z", naive_to_epoch=naive) == 2147385600
    # Naive ISO with a 'T' stays rejected even for az.
    with pytest.raises(ProtocolError):
        expiry("2030-01-02T03:04:05", naive_to_epoch=naive)


@pytest.mark.parametrize("error", [ValueError("bad"), OverflowError("big"), OSError("mktime")])
def test_naive_to_epoch_failures_are_protocol_errors(error: Exception) -> None:
    def naive(text: str) -> float:
        raise error

    with pytest.raises(ProtocolError, match="expires_on"):
        expiry("2030-01-02 03:04:05", naive_to_epoch=naive)


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        -1,
        -0.5,
        float("nan"),
        float("inf"),
        float("-inf"),
        "2030-01-02T03:04:05",  # naive ISO
        "2030-01-02",  # bare date
        "",
        "   ",
        {},
        {"expires_on": 42},
        [42],
        None,
        "-42",
        "1e10",
        "0x10",
        "soon",
        "2030-13-02T03:04:05Z",  # month 13
        "2030-02-30T03:04:05Z",  # 30 February
        "2030-01-02T24:04:05Z",
        "2030-01-02T03:04:05+24:00",  # offset out of range
        "13/22/2021 17:14:33 +00:00",
        "2/30/2021 17:14:33 +00:00",
        "1/1/2021 25:14:33 +00:00",
        "1/1/2021 0:00:42 AM +00:00",  # there is no hour 0 on a 12-hour clock
        "1/1/2021 13:00:42 PM +00:00",
        "05/22/2021 17:14:33",  # no offset
        "0000-01-01T00:00:00Z",
        b"1586984735",
    ],
)
def test_parse_expiry_rejections(value: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        expiry(value)
    error = info.value
    assert error.field == "expires_on"
    assert error.source == "Some Service"
    assert str(error).startswith(
        "TestCred: cannot read the Some Service reply: expires_on: not an expiry time: "
    )


def test_parse_expiry_message_shows_short_values() -> None:
    with pytest.raises(ProtocolError) as info:
        expiry("tomorrow-ish")
    assert str(info.value) == (
        "TestCred: cannot read the Some Service reply: expires_on: not an expiry time: 'tomorrow-ish'"
    )


def test_parse_expiry_masks_values_over_64_characters() -> None:
    long_value = "x" * 40 + "TAIL-THAT-MUST-NOT-SHOW" + "y" * 40
    with pytest.raises(ProtocolError) as info:
        expiry(long_value)
    message = str(info.value)
    assert long_value not in message
    assert "TAIL-THAT-MUST-NOT-SHOW" not in message
    assert "masked" in message
    assert len(message) < len("TestCred: cannot read the Some Service reply: expires_on: ") + 64
    # 64 characters of repr are still shown in full.
    exact = "z" * 62  # repr adds two quotes: 64 characters
    with pytest.raises(ProtocolError) as info:
        expiry(exact)
    assert repr(exact) in str(info.value)


@pytest.mark.parametrize("value", [42, "42", "1970-01-01T00:00:42Z", "01/01/1970 00:00:42 +00:00"])
def test_parse_expiry_rejects_values_not_after_now(value: Any) -> None:
    assert expiry(value, now=41.9) == 42
    with pytest.raises(ProtocolError, match=r"expires_on: 42 is already past") as info:
        expiry(value, now=42)
    assert info.value.field == "expires_on"
    with pytest.raises(ProtocolError, match="already past"):
        expiry(value, now=NOW)


def test_parse_expiry_upper_bound() -> None:
    assert expiry(MAX_EPOCH) == 253402300799
    assert expiry("9999-12-31T23:59:59Z") == MAX_EPOCH
    assert expiry(str(MAX_EPOCH)) == MAX_EPOCH
    for value in (MAX_EPOCH + 1, str(MAX_EPOCH + 1), 1e300, "9999-12-31T23:59:59-00:01"):
        with pytest.raises(ProtocolError, match="beyond year 9999") as info:
            expiry(value)
        assert info.value.field == "expires_on"


def test_parse_expiry_beyond_year_9999_message_is_bounded() -> None:
    with pytest.raises(ProtocolError) as info:
        expiry("9" * 1000)
    assert len(str(info.value)) < 200
    assert str(info.value) == f"{PREFIX}not an expiry time: '{'9' * 29}…(masked)"


PREFIX = "TestCred: cannot read the Some Service reply: expires_on: "


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param(10**63, "1" + "0" * 63, id="10**63"),  # 64 digits: shown
        pytest.param(10**64 - 1, "9" * 64, id="10**64-1"),
        pytest.param(10**64, "a number of over 64 digits", id="10**64"),  # 65 digits: described
        pytest.param(10**400, "a number of over 64 digits", id="10**400"),
        pytest.param(10**5000, "a number of over 64 digits", id="10**5000"),  # beyond int-to-str conversion
        (1e300, "a number of over 64 digits"),
        (1e20, "100000000000000000000"),
        ("9" * 15, "9" * 15),  # the longest numeric string
        ("1" * 15 + "." + "9" * 15, "1" * 15),
    ],
)
def test_parse_expiry_beyond_year_9999_shows_the_number_or_describes_it(value: Any, shown: str) -> None:
    with pytest.raises(ProtocolError) as info:
        expiry(value)
    assert str(info.value) == f"{PREFIX}{shown} is beyond year 9999"
    assert info.value.field == "expires_on"


@pytest.mark.parametrize(
    "value",
    [
        "1" * 16,  # over 15 digits before the point: not a time
        "1." + "1" * 16,  # over 15 after it
        "1.",
        ".5",
        "\u00b2",  # superscript two: str.isdigit() says yes, int() says no
        "1\u00b2",
        "\u0661\u0662\u0663",  # Arabic-Indic digits: int() would read them, azid does not
        "\uff11\uff12",  # fullwidth digits
        "\u0662\u0660\u0663\u0660-01-18T00:00:00Z",
        "2030-01-18T00:00:00.\u0661Z",
        "1/1/\u0662\u0660\u0663\u0660 0:00:00 +00:00",
    ],
)
def test_parse_expiry_numeric_text_is_ascii_and_at_most_15_digits(value: str) -> None:
    with pytest.raises(ProtocolError) as info:
        expiry(value)
    assert str(info.value).startswith(f"{PREFIX}not an expiry time: ")


def test_parse_expiry_az_local_form_needs_ascii_digits() -> None:
    def naive(text: str) -> float:
        raise AssertionError("non-ASCII digits never reach naive_to_epoch")

    with pytest.raises(ProtocolError, match="not an expiry time"):
        expiry("\u0662\u0660\u0663\u0660-01-02 03:04:05", naive_to_epoch=naive)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        pytest.param(-(10**400), "a number of over 64 digits", id="-10**400"),
    ],
)
def test_parse_expiry_non_finite_and_negative_numbers(value: float, shown: str) -> None:
    with pytest.raises(ProtocolError) as info:
        expiry(value)
    assert str(info.value) == f"{PREFIX}not an expiry time: {shown}"


def test_parse_expiry_masks_secrets_in_what_it_shows() -> None:
    with pytest.raises(ProtocolError) as info:
        expiry("soon-Hush.Hush-later", secrets=("Hush.Hush",))
    assert str(info.value) == f"{PREFIX}not an expiry time: 'soon-****-later'"
    with pytest.raises(ProtocolError) as info:
        expiry("eyJhbGciOi.eyJzdWIi.c2ln")
    assert str(info.value) == f"{PREFIX}not an expiry time: '****'"
    # The number in "beyond year 9999" is masked too.
    with pytest.raises(ProtocolError) as info:
        expiry(777777777777, secrets=("7777",))
    assert str(info.value) == f"{PREFIX}************ is beyond year 9999"
    # Masking comes before the 64-character cut, so a cut never shows part of a secret.
    secret = "S" * 40
    with pytest.raises(ProtocolError) as info:
        expiry("x" * 10 + secret + "y" * 40, secrets=(secret,))
    assert str(info.value) == f"{PREFIX}not an expiry time: '{'x' * 10}****{'y' * 40}'"


def test_parse_expiry_field_and_source_name_the_caller() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_expiry("never", field="expiresOn", source="Azure CLI", owner="AzureCliCredential", now=0)
    assert (info.value.source, info.value.field) == ("Azure CLI", "expiresOn")
    assert str(info.value).startswith("AzureCliCredential: cannot read the Azure CLI reply: expiresOn: ")


def test_parse_expiry_huge_int_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match=r"expires_on: a number of over 64 digits is beyond year 9999$"):
        expiry(10**400)


# -- parse_lifetime --


def lifetime(value: Any) -> int:
    return parse_lifetime(value, field="expires_in", source="Some Service", owner="TestCred")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3600, 3600),
        (3600.9, 3600),
        ("3600", 3600),
        (" 3600 ", 3600),
        ("3600.9", 3600),
        (0, 0),
        (-5, -5),
        ("-5", -5),
        ("-5.5", -5),
    ],
)
def test_parse_lifetime_accepts_numbers_and_numeric_strings(value: Any, expected: int) -> None:
    assert lifetime(value) == expected


@pytest.mark.parametrize(
    "value", [True, False, None, float("nan"), float("inf"), "", "soon", "1e3", "+5", [3600], {}, b"3600"]
)
def test_parse_lifetime_rejections(value: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        lifetime(value)
    assert info.value.field == "expires_in"
    assert info.value.source == "Some Service"
    assert "expires_in: not a number of seconds: " in str(info.value)


LIFETIME = "TestCred: cannot read the Some Service reply: expires_in: "


def test_parse_lifetime_huge_numeric_string_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError) as info:
        lifetime("1" * 5000)
    assert str(info.value) == f"{LIFETIME}not a number of seconds: '{'1' * 29}…(masked)"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(10**400, id="10**400"),
        pytest.param(-(10**400), id="-10**400"),
        pytest.param(10**5000, id="10**5000"),
        1e300,
        -1e300,
    ],
)
def test_parse_lifetime_huge_number_is_a_protocol_error(value: float) -> None:
    with pytest.raises(ProtocolError) as info:
        lifetime(value)
    assert str(info.value) == f"{LIFETIME}a number of over 64 digits seconds is beyond year 9999"
    assert info.value.field == "expires_in"


@pytest.mark.parametrize(
    "value", [MAX_EPOCH, -MAX_EPOCH, str(MAX_EPOCH), float(MAX_EPOCH), " -253402300799.9 "]
)
def test_parse_lifetime_bound_is_inclusive(value: Any) -> None:
    assert lifetime(value) == int(float(value))


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (MAX_EPOCH + 1, "253402300800"),
        (-MAX_EPOCH - 1, "-253402300800"),
        (str(MAX_EPOCH + 1), "253402300800"),
        (1e12, "1000000000000"),
        ("9" * 15, "9" * 15),
        ("-" + "9" * 15 + "." + "9" * 15, "-" + "9" * 15),
    ],
)
def test_parse_lifetime_beyond_year_9999(value: Any, shown: str) -> None:
    with pytest.raises(ProtocolError) as info:
        lifetime(value)
    assert str(info.value) == f"{LIFETIME}{shown} seconds is beyond year 9999"


@pytest.mark.parametrize(
    "value", ["9" * 16, "-" + "9" * 16, "1." + "1" * 16, "\u00b2", "\u0661\u0662", "\uff13", "- 5", "5-"]
)
def test_parse_lifetime_numeric_text_is_ascii_and_at_most_15_digits(value: str) -> None:
    with pytest.raises(ProtocolError) as info:
        lifetime(value)
    assert str(info.value) == f"{LIFETIME}not a number of seconds: {value!r}"


def test_parse_lifetime_masks_secrets_in_what_it_shows() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_lifetime("in Hush.Hush", field="refresh_in", source="S", owner="O", secrets=("Hush.Hush",))
    assert str(info.value) == "O: cannot read the S reply: refresh_in: not a number of seconds: 'in ****'"
    with pytest.raises(ProtocolError) as info:
        parse_lifetime(-555555555555, field="refresh_in", source="S", owner="O", secrets=("5555",))
    assert (
        str(info.value) == "O: cannot read the S reply: refresh_in: -************ seconds is beyond year 9999"
    )


# -- refresh_time (§7.2) --


@pytest.mark.parametrize(
    ("lifetime_s", "refresh_in", "expected"),
    [
        (3600, 1800, NOW + 1800),  # refresh_in honoured
        (3600, 1, NOW + 1),
        (3600, 3599, NOW + 3599),
        (3600, 3600, None),  # >= lifetime: ignored; short-lived, so no half-life either
        (3600, 4000, None),
        (3600, 0, None),  # <= 0: ignored
        (3600, -10, None),
        (3600, None, None),  # under 2 h: no half-life
        (7199, None, None),
        (7200, None, NOW + 3600),  # 2 h or more: half-life
        (86400, None, NOW + 43200),
        (86400, 0, NOW + 43200),  # an ignored refresh_in falls back to half-life
        (86400, 90000, NOW + 43200),
        (86400, 600, NOW + 600),
        (7201, None, NOW + 3600),  # lifetime // 2, floored
    ],
)
def test_refresh_time(lifetime_s: int, refresh_in: int | None, expected: float | None) -> None:
    result = refresh_time(NOW, int(NOW) + lifetime_s, refresh_in)
    assert result == expected
    assert result is None or isinstance(result, int)


def test_refresh_time_with_a_fractional_issue_time() -> None:
    assert refresh_time(NOW + 0.75, int(NOW) + 3601, 100) == int(NOW) + 100
    assert refresh_time(NOW + 0.5, int(NOW) + 8000, None) == int(NOW) + 3999


# -- the token types --


def test_access_token_is_azure_cores_named_tuple() -> None:
    token = AccessToken("secret-token-value", 1234)
    assert token._fields == ("token", "expires_on")
    value, expires_on = token
    assert (value, expires_on) == ("secret-token-value", 1234)
    assert "secret-token-value" not in repr(token)
    assert repr(token) == "AccessToken(token='****', expires_on=1234)"


def test_access_token_info_fields_repr_and_equality() -> None:
    info = AccessTokenInfo("secret-token-value", 1234)
    assert (info.token, info.expires_on, info.token_type, info.refresh_on, info.source) == (
        "secret-token-value",
        1234,
        "Bearer",
        None,
        None,
    )
    full = AccessTokenInfo("secret-token-value", 1234, token_type="pop", refresh_on=1000, source="X:y")
    assert (
        repr(full)
        == "AccessTokenInfo(token='****', expires_on=1234, token_type='pop', refresh_on=1000, source='X:y')"
    )
    assert "secret-token-value" not in repr(info)
    assert info == AccessTokenInfo("secret-token-value", 1234)
    assert info != full
    assert info != AccessTokenInfo("other", 1234)
    assert info != ("secret-token-value", 1234)
    assert info.__eq__(object()) is NotImplemented
    with pytest.raises(TypeError):
        hash(info)
    with pytest.raises(AttributeError):
        info.extra = 1  # type: ignore[attr-defined]


# The rule as first written, a regular expression; is_token_text now uses str methods.
_TOKEN_RULE = re.compile(r"[\x21-\x7e]{1,65536}")


@given(st.text(alphabet=st.characters(max_codepoint=0x80)) | st.text() | st.just("x" * 65537))
def test_is_token_text_is_the_rule(value: str) -> None:
    assert is_token_text(value) == bool(_TOKEN_RULE.fullmatch(value))


def test_is_token_text_takes_only_strings() -> None:
    assert not is_token_text(None)
    assert not is_token_text(b"abc")
    assert is_token_text("x" * 65536)


def _read(body: dict[str, Any], now: float) -> AccessTokenInfo | str:
    try:
        return token_from_json(body, owner="TestCred", source="Some Service", now=now)
    except ProtocolError as error:
        return str(error)


@given(
    st.integers(min_value=-5, max_value=MAX_EPOCH + 5) | st.integers(),
    st.floats(min_value=0, max_value=MAX_EPOCH - 1, allow_nan=False),
)
def test_a_whole_expires_in_reads_as_its_text_does(lifetime: int, now: float) -> None:
    # The shortcuts for an integer and for a string of digits, against the checked path, which a
    # number in padded text always takes.
    checked = _read({"access_token": "tok", "expires_in": f" {lifetime} "}, now)
    for value in (lifetime, str(lifetime)):
        read = _read({"access_token": "tok", "expires_in": value}, now)
        if isinstance(read, str):
            assert isinstance(checked, str)  # both refused (the message shows the value as it was given)
        else:
            assert read == checked
    if isinstance(checked, str) and len(str(abs(lifetime))) <= 15:  # longer text is not a number
        assert isinstance(_read({"access_token": "tok", "expires_in": lifetime}, now), str)
