"""HTTP conventions: User-Agent, forms, request ids, and retry policy E (PROTOCOL.md §0.4, §0.5)."""

from __future__ import annotations

import sys
import uuid
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azid_core.drive import run
from azid_core.effects import HttpRequest, HttpResponse, Sleep
from azid_core.errors import AzidError, ConfigError, TransportError
from azid_core.host import host_entropy
from azid_core.testing import ScriptedIO
from azid_core.wire import (
    ENTRA_POLICY,
    RetryPolicy,
    form_body,
    host_and_port,
    http,
    new_request_id,
    percent_encoded,
    retry_hint,
    send_with_retry,
    sleep,
    user_agent,
)

if TYPE_CHECKING:
    from azid_core.effects import Reply

NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
REQ = HttpRequest("POST", "https://login.example/t/oauth2/v2.0/token", body=b"a=1")
OK = HttpResponse(200, (), b"{}")
PYTHON = ".".join(str(part) for part in sys.version_info[:3])


def response(status: int, *headers: tuple[str, str]) -> HttpResponse:
    return HttpResponse(status, headers, b"")


# -- User-Agent --


def test_user_agent_format() -> None:
    assert user_agent({}, owner="TestCred") == f"azid/0.1.0 Python/{PYTHON} ({sys.platform})"
    assert user_agent({}, owner="TestCred", platform="win32") == f"azid/0.1.0 Python/{PYTHON} (win32)"


def test_user_agent_suffix_from_env() -> None:
    env = {"AZURE_HTTP_USER_AGENT": "  myapp/1.2 (team)  "}
    expected = f"azid/0.1.0 Python/{PYTHON} (linux) myapp/1.2 (team)"
    assert user_agent(env, owner="TestCred", platform="linux") == expected
    for blank in ("   ", "", "\t\r\n "):
        env = {"AZURE_HTTP_USER_AGENT": blank}
        assert user_agent(env, owner="TestCred", platform="linux") == f"azid/0.1.0 Python/{PYTHON} (linux)"
    # Surrounding whitespace is stripped first, Unicode whitespace included.
    env = {"AZURE_HTTP_USER_AGENT": "\u00a0myapp/2\u2028"}
    assert (
        user_agent(env, owner="TestCred", platform="linux") == f"azid/0.1.0 Python/{PYTHON} (linux) myapp/2"
    )
    # Every printable ASCII character is allowed.
    printable = "".join(chr(code) for code in range(0x21, 0x7F))
    env = {"AZURE_HTTP_USER_AGENT": printable}
    assert user_agent(env, owner="TestCred", platform="linux").endswith(f"(linux) {printable}")


def test_user_agent_owner_and_platform_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        user_agent({}, "linux")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        user_agent({})  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "suffix",
    [
        "myapp/1.2\r\nX-Injected: 1",  # header injection
        "app\nnext",
        "tab\there",
        "nul\x00",
        "del\x7f",
        "caf\u00e9/1.0",
        "csi\x9b31m",
        "line\u2028break",
        "emoji \U0001f600",
    ],
)
def test_user_agent_rejects_a_suffix_that_is_not_printable_ascii(suffix: str) -> None:
    with pytest.raises(ConfigError) as info:
        user_agent({"AZURE_HTTP_USER_AGENT": suffix}, owner="TestCred", platform="linux")
    assert str(info.value) == "TestCred: AZURE_HTTP_USER_AGENT is invalid: only printable ASCII is allowed"
    # The value itself is never shown.
    assert suffix.strip() not in str(info.value)
    assert isinstance(info.value, ValueError)


# -- forms --


def test_form_body_keeps_order_and_encodes() -> None:
    body = form_body(
        [
            ("scope", "https://vault.azure.net/.default openid"),
            ("client_id", "abc"),
            ("x", "a&b=c+d%e"),
            ("unicode", "ü"),
            ("empty", ""),
        ]
    )
    assert body == (
        b"scope=https%3A%2F%2Fvault.azure.net%2F.default+openid&client_id=abc"
        b"&x=a%26b%3Dc%2Bd%25e&unicode=%C3%BC&empty="
    )
    assert form_body([("b", "1"), ("a", "2")]) == b"b=1&a=2"
    assert form_body([]) == b""


# Mostly characters form_body passes through as they are, some it must escape; any ASCII (the
# translated table) and anything at all (left to urllib).
_FORM_TEXT = st.text() | st.text(alphabet="aZ09-_.~ %+&=/:ü") | st.text(st.characters(max_codepoint=127))


@given(st.lists(st.tuples(_FORM_TEXT, _FORM_TEXT), max_size=6))
def test_form_body_is_urlencode(fields: list[tuple[str, str]]) -> None:
    # Whatever the shortcuts (text that needs no escaping, ASCII text), the bytes are urlencode's.
    assert form_body(fields) == urlencode(fields).encode("ascii")


def test_form_body_quotes_names_that_need_it() -> None:
    assert form_body([("a b", "1"), ("ü_1", "2"), ("x=y", "3")]) == b"a+b=1&%C3%BC_1=2&x%3Dy=3"


# -- request ids and entropy --


def test_new_request_id_is_a_uuid4_from_the_entropy() -> None:
    asked: list[int] = []

    def entropy(size: int) -> bytes:
        asked.append(size)
        return bytes(range(size))

    request_id = new_request_id(entropy)
    assert request_id == "00010203-0405-4607-8809-0a0b0c0d0e0f"
    assert asked == [16]
    assert uuid.UUID(request_id).version == 4
    assert new_request_id(lambda n: b"\xff" * n) == "ffffffff-ffff-4fff-bfff-ffffffffffff"


@given(st.binary(min_size=16, max_size=16))
def test_new_request_id_is_what_uuid_makes(octets: bytes) -> None:
    assert new_request_id(lambda n: octets) == str(uuid.UUID(bytes=octets, version=4))


def test_the_host_entropy_is_fresh_random_bytes() -> None:
    entropy = host_entropy()
    first, second = entropy(16), entropy(16)
    assert len(first) == 16
    assert first != second
    assert len(entropy(3)) == 3
    assert uuid.UUID(new_request_id(entropy)).version == 4


# -- the http() and sleep() helpers --


def test_http_returns_the_response() -> None:
    flow = http(REQ)
    assert next(flow) is REQ
    with pytest.raises(StopIteration) as stop:
        flow.send(OK)
    assert stop.value.value is OK


@pytest.mark.parametrize("reply", [None, 1.5, b"body", "text"])
def test_http_rejects_a_reply_that_is_not_a_response(reply: object) -> None:
    flow = http(REQ)
    next(flow)
    with pytest.raises(AzidError, match="not HttpResponse") as info:
        flow.send(reply)  # type: ignore[arg-type]
    assert type(info.value) is AzidError
    assert "a=1" not in str(info.value)  # the request's repr hides its body


@pytest.mark.parametrize(
    ("reply", "expected"),
    [(None, NOW + 2.5), (NOW + 10, NOW + 10.0), (int(NOW) + 7, NOW + 7), (True, NOW + 2.5), ("x", NOW + 2.5)],
)
def test_sleep_returns_the_clock_after_waking(reply: object, expected: float) -> None:
    flow = sleep(2.5, NOW)
    assert next(flow) == Sleep(2.5)
    with pytest.raises(StopIteration) as stop:
        flow.send(reply)  # type: ignore[arg-type]
    assert stop.value.value == expected
    assert isinstance(stop.value.value, float)


# -- retry hints --


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((), None),
        ((("Retry-After", "5"),), 5.0),
        ((("retry-after", " 2.5 "),), 2.5),
        ((("RETRY-AFTER", "0"),), 0.0),
        ((("Retry-After", "-3"),), 0.0),
        ((("Retry-After", "61"),), 60.0),
        ((("Retry-After", "1e9"),), 60.0),
        ((("Retry-After", "Tue, 14 Nov 2023 22:13:27 GMT"),), 7.0),
        ((("Retry-After", "Tue, 14 Nov 2023 22:13:20 GMT"),), 0.0),
        ((("Retry-After", "Tue, 14 Nov 2023 22:12:00 GMT"),), 0.0),
        ((("Retry-After", "Wed, 15 Nov 2023 22:13:20 GMT"),), 60.0),
        ((("Retry-After", "Tue, 14 Nov 2023 23:13:27 +0100"),), 7.0),
        ((("Retry-After", "Tue, 14 Nov 2023 22:13:27 -0000"),), 7.0),  # GMT, not local time
        ((("retry-after-ms", "1500"),), 1.5),
        ((("Retry-After-Ms", "-1"),), 0.0),
        ((("retry-after-ms", "90000"),), 60.0),
        ((("x-ms-retry-after-ms", "250"),), 0.25),
        ((("X-MS-Retry-After-MS", "120000"),), 60.0),
        # Retry-After wins, then retry-after-ms, then x-ms-retry-after-ms.
        ((("x-ms-retry-after-ms", "100"), ("retry-after-ms", "200"), ("Retry-After", "3")), 3.0),
        ((("x-ms-retry-after-ms", "100"), ("retry-after-ms", "200")), 0.2),
        # An unreadable hint falls through to the next header, or to none.
        ((("Retry-After", "soon"), ("retry-after-ms", "200")), 0.2),
        ((("Retry-After", "nan"), ("x-ms-retry-after-ms", "300")), 0.3),
        ((("Retry-After", "inf"),), None),
        ((("Retry-After", "soon"),), None),
        ((("Retry-After", ""),), None),
        ((("retry-after-ms", "nan"), ("x-ms-retry-after-ms", "x")), None),
        ((("Retry-After", "Mon, 32 Nov 2023 22:13:27 GMT"),), None),
        ((("Retry-After", "Tue, 14 Nov 2023 22:13:27 +9999"),), None),
    ],
)
def test_retry_hint(headers: tuple[tuple[str, str], ...], expected: float | None) -> None:
    assert retry_hint(HttpResponse(429, headers), NOW) == expected


def test_retry_hint_date_is_relative_to_the_flow_clock() -> None:
    date = (("Retry-After", "Tue, 14 Nov 2023 22:13:40 GMT"),)
    assert retry_hint(HttpResponse(503, date), NOW) == 20.0
    assert retry_hint(HttpResponse(503, date), NOW + 15) == 5.0
    assert retry_hint(HttpResponse(503, date), NOW + 30) == 0.0


# -- send_with_retry: policy E --


def drive(*replies: Reply | BaseException, now: float = NOW) -> tuple[HttpResponse, float, ScriptedIO]:
    io = ScriptedIO(*replies)
    result, clock = run(send_with_retry(REQ, ENTRA_POLICY, now), io)
    assert io.unused == 0
    return result, clock, io


def test_policy_e() -> None:
    expected = RetryPolicy(
        statuses=frozenset({429, 500, 503, 504}),
        transport_kinds=frozenset({"connect"}),
        delays=(0.0, 1.6, 3.2),
        budget=60.0,
    )
    assert expected == ENTRA_POLICY


def test_success_needs_no_retry() -> None:
    result, clock, io = drive(OK)
    assert result is OK
    assert clock == NOW
    assert io.seen == [REQ]


@pytest.mark.parametrize("status", [429, 500, 503, 504])
def test_retryable_statuses_are_retried_three_times_then_reported(status: int) -> None:
    last = response(status, ("x-attempt", "4"))
    result, clock, io = drive(response(status), None, response(status), None, response(status), None, last)
    assert result is last
    assert io.seen == [REQ, Sleep(0.0), REQ, Sleep(1.6), REQ, Sleep(3.2), REQ]
    assert clock == pytest.approx(NOW + 4.8)


@pytest.mark.parametrize("status", [429, 500, 503, 504])
def test_retryable_status_then_success(status: int) -> None:
    result, clock, io = drive(response(status), None, OK)
    assert result is OK
    assert io.seen == [REQ, Sleep(0.0), REQ]
    assert clock == NOW


@pytest.mark.parametrize("status", [200, 201, 302, 400, 401, 403, 404, 408, 502, 505, 599])
def test_other_statuses_are_not_retried(status: int) -> None:
    only = response(status)
    result, clock, io = drive(only)
    assert result is only
    assert io.seen == [REQ]
    assert clock == NOW


def test_connect_failures_are_retried() -> None:
    result, _, io = drive(TransportError("connect", "refused"), None, OK)
    assert result is OK
    assert io.seen == [REQ, Sleep(0.0), REQ]


def test_mixed_failures_then_success() -> None:
    result, clock, io = drive(
        TransportError("connect", "refused"),
        None,
        response(503),
        NOW + 5,
        TransportError("connect", "dns"),
        None,
        OK,
    )
    assert result is OK
    assert io.seen == [REQ, Sleep(0.0), REQ, Sleep(1.6), REQ, Sleep(3.2), REQ]
    assert clock == pytest.approx(NOW + 5 + 3.2)


def test_connect_failure_on_every_attempt_raises_the_last_one() -> None:
    errors = [TransportError("connect", f"refused {i}") for i in range(4)]
    io = ScriptedIO(errors[0], None, errors[1], None, errors[2], None, errors[3])
    with pytest.raises(TransportError) as info:
        run(send_with_retry(REQ, ENTRA_POLICY, NOW), io)
    assert info.value is errors[3]
    assert io.seen == [REQ, Sleep(0.0), REQ, Sleep(1.6), REQ, Sleep(3.2), REQ]


def test_retryable_status_after_connect_failures_is_reported() -> None:
    last = response(503)
    result, _, io = drive(
        TransportError("connect", "a"), None, TransportError("connect", "b"), None, response(500), None, last
    )
    assert result is last
    assert len(io.seen) == 7


@pytest.mark.parametrize("kind", ["timeout", "closed", "tls", "proxy", "too_large", "pin_mismatch"])
def test_other_transport_failures_are_not_retried(kind: str) -> None:
    error = TransportError(kind, "boom")
    io = ScriptedIO(error)
    with pytest.raises(TransportError) as info:
        run(send_with_retry(REQ, ENTRA_POLICY, NOW), io)
    assert info.value is error
    assert io.seen == [REQ]


def test_non_retryable_failure_after_a_retry_is_raised() -> None:
    error = TransportError("timeout", "slow")
    io = ScriptedIO(response(503), None, error)
    with pytest.raises(TransportError) as info:
        run(send_with_retry(REQ, ENTRA_POLICY, NOW), io)
    assert info.value is error
    assert io.seen == [REQ, Sleep(0.0), REQ]


@pytest.mark.parametrize(
    ("header", "delay"),
    [
        (("Retry-After", "7"), 7.0),
        (("Retry-After", "Tue, 14 Nov 2023 22:13:27 GMT"), 7.0),
        (("retry-after-ms", "2500"), 2.5),
        (("x-ms-retry-after-ms", "800"), 0.8),
        (("Retry-After", "600"), 60.0),
        (("Retry-After", "-5"), 0.0),
    ],
)
def test_hint_replaces_the_delay(header: tuple[str, str], delay: float) -> None:
    result, clock, io = drive(response(429, header), None, OK)
    assert result is OK
    assert io.seen == [REQ, Sleep(delay), REQ]
    assert clock == NOW + delay


def test_http_date_hint_uses_the_clock_after_the_previous_sleep() -> None:
    date = ("Retry-After", "Tue, 14 Nov 2023 22:13:40 GMT")  # NOW + 20
    # First 503 has no hint: Sleep(0), the adapter says it woke at NOW + 12.
    result, clock, io = drive(response(503), NOW + 12, response(503, date), None, OK)
    assert result is OK
    assert io.seen == [REQ, Sleep(0.0), REQ, Sleep(8.0), REQ]
    assert clock == NOW + 20


def test_sleep_reply_none_advances_the_clock_by_the_delay() -> None:
    _, clock, _ = drive(
        response(503, ("Retry-After", "4")), None, response(503, ("Retry-After", "6")), None, OK
    )
    assert clock == NOW + 10


def test_sleep_reply_sets_the_clock() -> None:
    _, clock, _ = drive(response(503, ("Retry-After", "4")), NOW + 100, OK)
    assert clock == NOW + 100


def test_budget_stops_retrying() -> None:
    # Each hint is clamped to 60 s: one retry fits the 60 s budget, a second would not.
    last = response(429, ("Retry-After", "120"))
    result, clock, io = drive(response(429, ("Retry-After", "120")), None, last)
    assert result is last
    assert io.seen == [REQ, Sleep(60.0), REQ]
    assert clock == NOW + 60


def test_budget_counts_all_sleeps() -> None:
    hint = ("Retry-After", "30")
    last = response(503, hint)
    result, _, io = drive(response(503, hint), None, response(503, hint), None, last)
    assert result is last
    assert io.seen == [REQ, Sleep(30.0), REQ, Sleep(30.0), REQ]


def test_budget_stop_after_a_connect_failure_raises_it() -> None:
    policy = RetryPolicy(frozenset({503}), frozenset({"connect"}), (50.0, 50.0), 60.0)
    error = TransportError("connect", "refused")
    io = ScriptedIO(TransportError("connect", "first"), None, error)
    with pytest.raises(TransportError) as info:
        run(send_with_retry(REQ, policy, NOW), io)
    assert info.value is error
    assert io.seen == [REQ, Sleep(50.0), REQ]


def test_a_policy_without_delays_makes_one_attempt() -> None:
    policy = RetryPolicy(frozenset({503}), frozenset({"connect"}), (), 60.0)
    only = response(503)
    result, clock = run(send_with_retry(REQ, policy, NOW), ScriptedIO(only))
    assert (result, clock) == (only, NOW)
    error = TransportError("connect", "x")
    with pytest.raises(TransportError):
        run(send_with_retry(REQ, policy, NOW), ScriptedIO(error))


def test_send_with_retry_rejects_a_bad_reply() -> None:
    with pytest.raises(AzidError, match="not HttpResponse"):
        run(send_with_retry(REQ, ENTRA_POLICY, NOW), ScriptedIO(None))


@given(_FORM_TEXT)
def test_percent_encoded_is_quote_with_nothing_safe(text: str) -> None:
    assert percent_encoded(text) == quote(text, safe="")


# \u0661 is a digit to str.isdigit, and no digit of a port to urllib.
_NETLOC = st.text(alphabet="aZ09:.-_@[]% \u0661", max_size=14) | st.text(max_size=8)


@given(_NETLOC)
def test_host_and_port_are_what_urllib_reads(netloc: str) -> None:
    try:
        parts = urlsplit(f"https://{netloc}/path")
    except ValueError:
        return  # urllib refuses the URL itself: normalize_authority says "not a URL"
    try:
        expected: tuple[str, int | None] | type[ValueError] = (parts.hostname or "", parts.port)
    except ValueError:
        expected = ValueError
    try:
        found: tuple[str, int | None] | type[ValueError] = host_and_port(parts)
    except ValueError:
        found = ValueError
    assert found == expected
