"""Property tests on every parser: for any input only AzidError subclasses escape, and no message
shows a planted secret (PROTOCOL.md §0.3, §0.7, §8).

Nothing is kept out of the generated inputs: integers of any size (past float range, past 64
digits, past Python's 4300-digit int/str limit where a direct call allows it), Unicode digits that
`str.isdigit` accepts (superscripts, Arabic-Indic, fullwidth), and the planted secret in every
field the parsers read, `error`, `expires_in`, `expires_on` and `refresh_in` included.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azid_core.effects import HttpResponse
from azid_core.entra.authority import LOOPBACK_HOSTS, normalize_authority
from azid_core.entra.endpoint import parse_error_reply, parse_token_reply
from azid_core.errors import AuthError, AzidError, ConfigError, ProtocolError
from azid_core.redact import MASK, excerpt, mask
from azid_core.tokens import MAX_EPOCH, AccessTokenInfo, parse_expiry, parse_lifetime
from azid_core.wire import retry_hint

PROPERTY = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
# Structured JSON bodies cost ~5 ms an example: fewer of them keep the suite fast.
STRUCTURED = settings(PROPERTY, max_examples=60)
SECRET = "Pl4nted~Secret.Zq9x"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.c2lnbmF0dXJlLXBsYW50ZWQ"
OWNER = "PropCred"
NOW = 1_700_000_000.0

# -- strategies --

# JSON can carry integers of up to 4300 digits (json.loads refuses longer ones); direct calls get
# longer ones too.
JSON_INT_DIGITS = 4300
any_ints = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.integers(min_value=1, max_value=JSON_INT_DIGITS).map(lambda n: 10**n - 1),
    st.integers(min_value=1, max_value=JSON_INT_DIGITS - 1).map(lambda n: -(10**n)),
)
huge_ints = st.builds(
    lambda digits, sign: sign * (10**digits + 7),
    st.integers(min_value=JSON_INT_DIGITS, max_value=6000),
    st.sampled_from([1, -1]),
)
odd_digits = st.text(
    alphabet="0123456789\u00b2\u00b3\u00b9\u2070\u2074\u0660\u0665\u06f1\u0967\uff11.-", max_size=20
)
text = st.one_of(st.text(max_size=80), odd_digits)
json_scalars = st.one_of(st.none(), st.booleans(), any_ints, st.floats(), text)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=10,
)
expiry_like = st.one_of(
    json_values,
    st.from_regex(r"\A\d{1,12}(\.\d{1,6})?\Z"),
    st.from_regex(r"\A\s*-?[0-9]{13,18}(\.[0-9]{1,18})?\s*\Z"),  # around the 15-digit limit
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})?\Z"),
    st.from_regex(r"\A\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2}( [AaPp][Mm])? [+-]\d{2}:\d{2}\Z"),
)
nows = st.floats(min_value=0, max_value=MAX_EPOCH, allow_nan=False)
statuses = st.integers(min_value=100, max_value=599)
header_names = st.sampled_from(
    ["Retry-After", "retry-after", "retry-after-ms", "x-ms-retry-after-ms", "Content-Type", "X-Other"]
)
header_values = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\A-?\d{1,6}(\.\d{1,3})?\Z"),
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(timezone.utc)
    ).map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
    st.sampled_from(
        ["nan", "inf", "-inf", "1e400", "Mon, 32 Dec 2023 00:00:00 GMT", "Tue, 1 Jan 0000 00:00:00 -0000"]
    ),
)
headers = st.lists(st.tuples(header_names, header_values), max_size=4).map(tuple)


SHORT_TEXT = st.text(max_size=60)


@st.composite
def planted(draw: st.DrawFn, base: st.SearchStrategy[str] = SHORT_TEXT) -> str:
    """Text with the secret or a JWT dropped in somewhere."""
    before, after = draw(base), draw(base)
    return before + draw(st.sampled_from([SECRET, JWT])) + after


# Keys whose values the parsers read; the secret may be planted in any of them.
TOKEN_KEYS = ["access_token", "expires_in", "expires_on", "refresh_in", "token_type", "refresh_token"]
ERROR_KEYS = [
    "error",
    "error_description",
    "error_codes",
    "trace_id",
    "correlation_id",
    "timestamp",
    "claims",
]
NUMERIC_KEYS = {"expires_in", "expires_on", "refresh_in"}


@st.composite
def reply_bodies(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(TOKEN_KEYS + ERROR_KEYS), unique=True, max_size=8))
    body: dict[str, Any] = {}
    for key in keys:
        if key in NUMERIC_KEYS:
            body[key] = draw(st.one_of(expiry_like, planted(), planted(odd_digits)))
        elif key == "error_codes":
            body[key] = draw(
                st.lists(st.one_of(any_ints, text, st.booleans(), st.none()), max_size=3) | json_values
            )
        else:
            body[key] = draw(st.one_of(json_values, planted()))
    return body


def assert_clean(error: BaseException) -> None:
    assert isinstance(error, AzidError), repr(error)
    message = str(error)
    assert SECRET not in message
    assert JWT not in message


# -- expiry and lifetime --


@PROPERTY
@given(value=st.one_of(expiry_like, huge_ints, planted(), planted(odd_digits)), now=nows)
def test_parse_expiry_returns_a_valid_epoch_or_raises_protocol_error(value: Any, now: float) -> None:
    try:
        result = parse_expiry(
            value, field="expires_on", source="Svc", owner=OWNER, now=now, secrets=(SECRET,)
        )
    except ProtocolError as exc:
        assert_clean(exc)
        assert exc.field == "expires_on"
        assert exc.source == "Svc"
        assert str(exc).startswith(f"{OWNER}: cannot read the Svc reply: expires_on: ")
        assert len(str(exc)) < 200  # long values and numbers are never shown in full
    else:
        assert isinstance(result, int)
        assert now < result <= MAX_EPOCH


@PROPERTY
@given(value=expiry_like, offset=st.floats(min_value=-1e12, max_value=1e12, allow_nan=False))
def test_parse_expiry_with_a_naive_to_epoch_that_may_fail(value: Any, offset: float) -> None:
    def naive(text: str) -> float:
        moment = datetime.fromisoformat(text)  # may raise ValueError, like datetime.timestamp callers
        return moment.replace(tzinfo=timezone.utc).timestamp() + offset

    try:
        parse_expiry(value, field="expiresOn", source="Azure CLI", owner=OWNER, now=0, naive_to_epoch=naive)
    except ProtocolError as exc:
        assert exc.field == "expiresOn"


@PROPERTY
@given(
    moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31)),
    minutes=st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
    fraction=st.sampled_from(["", ".0", ".999999", ".5"]),
)
def test_iso_and_us_forms_round_trip(moment: datetime, minutes: int, fraction: str) -> None:
    zone = timezone(timedelta(minutes=minutes))
    aware = moment.replace(microsecond=0, tzinfo=zone)
    expected = int(aware.timestamp())
    sign = "+" if minutes >= 0 else "-"
    offset = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    stamp = aware.strftime("%Y-%m-%dT%H:%M:%S") + fraction
    assert parse_expiry(stamp + offset, field="f", source="s", owner=OWNER, now=0) == expected
    if minutes == 0:
        assert parse_expiry(stamp + "Z", field="f", source="s", owner=OWNER, now=0) == expected
    us = f"{aware.month}/{aware.day}/{aware.year:04d} {aware.hour}:{aware.strftime('%M:%S')} {offset}"
    assert parse_expiry(us, field="f", source="s", owner=OWNER, now=0) == expected
    hour12 = aware.hour % 12 or 12
    meridiem = "AM" if aware.hour < 12 else "PM"
    date = f"{aware.month:02d}/{aware.day:02d}/{aware.year:04d}"
    ampm = f"{date} {hour12}:{aware.strftime('%M:%S')} {meridiem} {offset}"
    assert parse_expiry(ampm, field="f", source="s", owner=OWNER, now=0) == expected


@PROPERTY
@given(value=st.integers(min_value=1, max_value=MAX_EPOCH))
def test_numbers_and_numeric_strings_agree(value: int) -> None:
    def parse(item: Any) -> int:
        return parse_expiry(item, field="f", source="s", owner=OWNER, now=0)

    assert parse(value) == parse(str(value)) == parse(float(value)) == value


@PROPERTY
@given(
    value=st.one_of(
        json_values,
        huge_ints,
        planted(),
        planted(odd_digits),
        st.from_regex(r"\A\s*-?\d{1,20}(\.\d{1,20})?\s*\Z"),
    )
)
def test_parse_lifetime_returns_int_or_raises_protocol_error(value: Any) -> None:
    try:
        result = parse_lifetime(value, field="refresh_in", source="Svc", owner=OWNER, secrets=(SECRET,))
    except ProtocolError as exc:
        assert_clean(exc)
        assert exc.field == "refresh_in"
        assert len(str(exc)) < 200
    else:
        assert isinstance(result, int)
        assert abs(result) <= MAX_EPOCH
        if isinstance(value, str):
            assert result == int(value.strip().partition(".")[0])


@PROPERTY
@given(value=st.integers(min_value=-(10**13), max_value=10**13))
def test_parse_lifetime_round_trips_integers_up_to_year_9999(value: int) -> None:
    for item in (value, str(value), f" {value}.999 "):
        if abs(value) <= MAX_EPOCH:
            assert parse_lifetime(item, field="f", source="s", owner=OWNER) == value
        else:
            try:
                parse_lifetime(item, field="f", source="s", owner=OWNER)
            except ProtocolError as exc:
                assert str(exc) == f"{OWNER}: cannot read the s reply: f: {value} seconds is beyond year 9999"
            else:
                raise AssertionError(f"{item!r} was accepted")


# -- Entra replies --


def check_reply(response: HttpResponse, now: float = NOW) -> None:
    try:
        info = parse_token_reply(response, owner=OWNER, now=now, secrets=(SECRET,), request_id="rid")
    except (AuthError, ProtocolError) as exc:
        assert_clean(exc)
        if isinstance(exc, AuthError):
            assert exc.status == response.status
            assert exc.request_id == "rid"
            if exc.body_excerpt is not None:
                assert len(exc.body_excerpt) <= 500
                assert SECRET not in exc.body_excerpt
            for shown in (exc.description, exc.error):
                assert shown is None or (SECRET not in shown and JWT not in shown)
        return
    assert isinstance(info, AccessTokenInfo)
    assert 200 <= response.status < 300
    assert now < info.expires_on <= MAX_EPOCH
    assert info.refresh_on is None or now < info.refresh_on < info.expires_on
    assert 1 <= len(info.token) <= 65536
    assert info.source == OWNER


@PROPERTY
@given(status=statuses, headers=headers, body=st.binary(max_size=300))
def test_token_reply_from_arbitrary_bytes(
    status: int, headers: tuple[tuple[str, str], ...], body: bytes
) -> None:
    check_reply(HttpResponse(status, headers, body))


@PROPERTY
@given(status=statuses, body=planted(st.text(max_size=300)))
def test_token_reply_from_text_with_a_planted_secret(status: int, body: str) -> None:
    check_reply(HttpResponse(status, (), body.encode("utf-8", "surrogatepass")))


@STRUCTURED
@given(
    status=st.one_of(st.just(200), statuses),
    body=reply_bodies(),
    now=st.floats(min_value=0, max_value=4e9, allow_nan=False),
)
def test_token_reply_from_structured_json(status: int, body: dict[str, Any], now: float) -> None:
    check_reply(HttpResponse(status, (), json.dumps(body).encode()), now)


@PROPERTY
@given(
    access_token=st.text(min_size=1, max_size=50),
    expires_in=st.one_of(any_ints, st.floats(), st.from_regex(r"\A-?\d{1,16}(\.\d+)?\Z")),
    refresh_in=st.one_of(st.none(), any_ints, st.floats(), st.from_regex(r"\A-?\d{1,16}\Z")),
)
def test_token_reply_well_formed_shapes(access_token: str, expires_in: Any, refresh_in: Any) -> None:
    body: dict[str, Any] = {"access_token": access_token, "expires_in": expires_in}
    if refresh_in is not None:
        body["refresh_in"] = refresh_in
    check_reply(HttpResponse(200, (), json.dumps(body).encode()))


@PROPERTY
@given(status=statuses, body=st.one_of(st.binary(max_size=300), planted().map(str.encode)))
def test_error_reply_from_arbitrary_bytes(status: int, body: bytes) -> None:
    error = parse_error_reply(HttpResponse(status, (), body), owner=OWNER, secrets=(SECRET,))
    assert isinstance(error, AuthError)
    assert_clean(error)
    assert str(error).startswith(f"{OWNER}: Microsoft Entra ID refused the request (HTTP {status}")


@STRUCTURED
@given(status=statuses, body=reply_bodies())
def test_error_reply_from_structured_json(status: int, body: dict[str, Any]) -> None:
    error = parse_error_reply(
        HttpResponse(status, (), json.dumps(body).encode()), owner=OWNER, secrets=(SECRET,)
    )
    assert isinstance(error, AuthError)
    assert_clean(error)
    assert all(isinstance(code, int) for code in error.error_codes)


# -- retry hints --


@PROPERTY
@given(headers=headers, now=st.floats(min_value=0, max_value=4e11, allow_nan=False))
def test_retry_hint_is_none_or_clamped(headers: tuple[tuple[str, str], ...], now: float) -> None:
    hint = retry_hint(HttpResponse(429, headers), now)
    assert hint is None or 0.0 <= hint <= 60.0


@PROPERTY
@given(seconds=st.integers(min_value=0, max_value=60))
def test_retry_after_seconds_round_trip(seconds: int) -> None:
    assert retry_hint(HttpResponse(503, (("Retry-After", str(seconds)),)), NOW) == seconds
    assert retry_hint(HttpResponse(503, (("retry-after-ms", str(seconds * 1000)),)), NOW) == seconds


# -- authority --


def check_authority(value: str) -> None:
    try:
        result = normalize_authority(value, {}, owner=OWNER)
    except ConfigError as exc:
        assert str(exc).startswith(f"{OWNER}: authority is invalid: ")
        return
    parts = urlsplit(result)
    assert parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)
    assert parts.hostname
    host = parts.hostname.partition("%")[0]  # urlsplit keeps the case of an IPv6 zone id
    assert host == host.lower()
    assert not parts.query
    assert not parts.fragment
    assert parts.username is None
    assert not result.endswith("/")


@PROPERTY
@given(value=st.text(max_size=80))
def test_normalize_authority_on_arbitrary_text(value: str) -> None:
    check_authority(value)


@PROPERTY
@given(
    scheme=st.sampled_from(["", "https://", "http://", "HTTPS://", "ftp://", "https:/", "//"]),
    host=st.one_of(
        st.sampled_from(["localhost", "127.0.0.1", "[::1]", "Login.MicrosoftOnline.com", "[fe80::1]", ""]),
        st.text(alphabet="abcXYZ.-_:@[]%", max_size=20),
    ),
    port=st.one_of(st.just(""), st.integers(min_value=-5, max_value=70000).map(lambda p: f":{p}")),
    path=st.text(alphabet="/abc?#%@ ", max_size=12),
)
def test_normalize_authority_on_url_shaped_text(scheme: str, host: str, port: str, path: str) -> None:
    check_authority(scheme + host + port + path)


# -- redaction --


@PROPERTY
@given(
    before=st.text(max_size=200),
    after=st.text(max_size=200),
    secret=st.text(alphabet=st.characters(exclude_characters="*"), min_size=1, max_size=30),
)
def test_mask_removes_a_verbatim_secret(before: str, after: str, secret: str) -> None:
    shown = mask(before + secret + after, [secret])
    assert secret not in shown
    cut = excerpt(before + secret + after, [secret])
    assert secret not in cut
    assert len(cut) <= 500


@PROPERTY
@given(text=planted(st.text(max_size=700)))
def test_excerpt_never_shows_a_planted_secret_or_jwt(text: str) -> None:
    cut = excerpt(text, [SECRET])
    assert SECRET not in cut
    assert JWT not in cut
    assert MASK in cut or len(text) > 500
    assert len(cut) <= 500
