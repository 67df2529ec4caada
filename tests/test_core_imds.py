"""IMDS as a managed-identity source, core only: the request for every selector, policy I (the §4.4
table on the Sleep effects, the 410 schedule, hints, the budget, the transport cap), §4.3's IMDS
outcomes, and the probe with its memory (§4.5)."""

from __future__ import annotations

import threading

import pytest

from azid_core.acquire import TokenCall, acquire_flow
from azid_core.effects import AwaitFlight, HttpRequest, HttpResponse, Sleep
from azid_core.errors import (
    AuthError,
    ConfigError,
    CredentialUnavailableError,
    NotConfiguredError,
    ProtocolError,
    TransportError,
)
from azid_core.flight import FlightTable
from azid_core.managed_identity.imds import IMDS_POLICY
from azid_core.wire import RetryPolicy, send_with_retry

from .mi_core import (
    IMDS_URL,
    NOW,
    RES_ID,
    RES_ID_Q,
    RESOURCE_Q,
    SCOPE,
    TOKEN,
    attempt_times,
    base_headers,
    fail,
    get,
    json_reply,
    make,
    requests,
    sleeps,
    token_reply,
)

OK = token_reply(expires_in="3600")
SERVER_ERROR = json_reply(500, {"error": "internal", "error_description": "try later"})
REFUSED = TransportError("connect", "connection refused")


# -- the request (§4.2) --


@pytest.mark.parametrize(
    ("options", "query"),
    [
        ({}, ""),
        ({"client_id": "c-1"}, "&client_id=c-1"),
        ({"object_id": "o-1"}, "&object_id=o-1"),
        ({"resource_id": RES_ID}, f"&msi_res_id={RES_ID_Q}"),
        ({"identity_config": {"client_id": "c-1"}}, "&client_id=c-1"),
        ({"identity_config": {"object_id": "o-1"}}, "&object_id=o-1"),
        ({"identity_config": {"resource_id": RES_ID}}, f"&msi_res_id={RES_ID_Q}"),
        ({"identity_config": {"mi_res_id": RES_ID}}, f"&msi_res_id={RES_ID_Q}"),
        ({"identity_config": {"msi_res_id": RES_ID}}, f"&msi_res_id={RES_ID_Q}"),
    ],
)
def test_the_token_get_for_every_selector(options: dict[str, object], query: str) -> None:
    info, io = get(make(**options), OK)  # type: ignore[arg-type]
    assert io.seen == [
        HttpRequest(
            "GET",
            f"{IMDS_URL}?api-version=2018-02-01&resource={RESOURCE_Q}{query}",
            headers=(*base_headers(), ("Metadata", "true")),
            timeout=30.0,
            connect_timeout=2.0,
            bypass_proxy=True,  # expected: the default IMDS address is link-local (§4.2)
        )
    ]
    assert info.token == TOKEN
    assert info.source == "ManagedIdentityCredential:imds"


def test_the_endpoint_option_and_the_pod_identity_variable() -> None:
    _, io = get(make(imds_endpoint="http://127.0.0.1:8080/", request_timeout=5), OK)
    (request,) = requests(io)
    assert request.url.startswith("http://127.0.0.1:8080/metadata/identity/oauth2/token?api-version=")
    assert (request.timeout, request.connect_timeout, request.bypass_proxy) == (5.0, 2.0, True)
    env = {"AZURE_POD_IDENTITY_AUTHORITY_HOST": "https://pod-identity.example:2579/"}
    _, io = get(make(env), OK)
    (request,) = requests(io)
    assert request.url.startswith("https://pod-identity.example:2579/metadata/identity/oauth2/token?")
    assert request.bypass_proxy is False  # not loopback or link-local
    # The option wins over the variable.
    _, io = get(make(env, imds_endpoint="http://127.0.0.2"), OK)
    assert requests(io)[0].url.startswith("http://127.0.0.2/metadata/")


@pytest.mark.parametrize(
    ("options", "env", "name"),
    [
        ({"imds_endpoint": ""}, {}, "imds_endpoint"),
        ({"imds_endpoint": "  "}, {}, "imds_endpoint"),
        ({"imds_endpoint": 42}, {}, "imds_endpoint"),
        ({"imds_endpoint": "169.254.169.254"}, {}, "imds_endpoint"),  # expect ConfigError: no scheme
        ({"imds_endpoint": "ftp://host"}, {}, "imds_endpoint"),
        ({"imds_endpoint": "http://host:0"}, {}, "imds_endpoint"),
        ({"imds_endpoint": "http://host:99999"}, {}, "imds_endpoint"),
        ({}, {"AZURE_POD_IDENTITY_AUTHORITY_HOST": "/relative"}, "AZURE_POD_IDENTITY_AUTHORITY_HOST"),
    ],
)
def test_a_bad_endpoint_is_a_config_error_naming_it(
    options: dict[str, object], env: dict[str, str], name: str
) -> None:
    with pytest.raises(ConfigError, match=rf"^ManagedIdentityCredential: {name} is invalid: an absolute"):
        make(env, **options)


# -- policy I (§0.5, §4.4) --


def test_policy_i() -> None:
    assert IMDS_POLICY.statuses == frozenset({404, 408, 410, 429, *range(500, 600)})
    assert IMDS_POLICY.transport_kinds == frozenset({"connect", "timeout", "closed"})
    assert IMDS_POLICY.delays == (0.0, 1.6, 3.2, 6.4, 12.8)  # 0, then 0.8·2^(n-1)
    assert IMDS_POLICY.slow_delays == (0.0, 5.0, 10.0, 20.0, 40.0)  # 0, then 2.5·2^(n-1) after a 410
    assert (IMDS_POLICY.slow_statuses, IMDS_POLICY.transport_retries, IMDS_POLICY.budget) == (
        frozenset({410}),
        3,
        90.0,
    )


def test_vector_410_410_200() -> None:
    gone = json_reply(410, {"error": "gone"})
    info, io = get(make(), gone, None, gone, None, OK)
    assert attempt_times(io) == [0, 0, 5]
    assert info.token == TOKEN


def test_vector_429_with_retry_after() -> None:
    busy = json_reply(429, {"error": "throttled"}, headers=(("Retry-After", "2"),))
    info, io = get(make(), busy, None, OK)
    assert attempt_times(io) == [0, 2]
    assert info.token == TOKEN


def test_vector_500_six_times() -> None:
    replies: list[object] = [SERVER_ERROR]
    for _ in range(5):
        replies += [None, SERVER_ERROR]
    error, io = fail(make(), *replies)  # type: ignore[arg-type]
    assert attempt_times(io) == [0, 0, 1.6, 4.8, 11.2, 24]
    assert isinstance(error, AuthError)
    assert error.status == 500
    assert error.error == "internal"


def test_vector_refused_four_times() -> None:
    error, io = fail(make(), REFUSED, None, REFUSED, None, REFUSED, None, REFUSED)
    assert attempt_times(io) == [0, 0, 1.6, 4.8]
    assert type(error) is CredentialUnavailableError
    assert str(error).startswith(
        f"ManagedIdentityCredential (imds): the endpoint {IMDS_URL} is unreachable (connect)"
    )
    assert isinstance(error.__cause__, TransportError)


def test_a_410_after_other_statuses_takes_the_long_delay_for_its_retry() -> None:
    gone = json_reply(410, {"error": "gone"})
    missing = json_reply(404, {"error": "not yet"})
    _, io = get(make(), missing, None, missing, None, gone, None, OK)
    assert sleeps(io) == [0.0, 1.6, 10.0]  # before retry 3 after a 410: 2.5·2^2


def test_transport_failures_count_apart_from_statuses() -> None:
    # Three transport retries at most, whatever statuses came before them.
    replies = [SERVER_ERROR, None, TransportError("timeout", "t"), None, TransportError("closed", "c"), None]
    replies += [TransportError("connect", "r"), None, TransportError("connect", "r")]
    error, io = fail(make(), *replies)
    assert sleeps(io) == [0.0, 1.6, 3.2, 6.4]
    assert type(error) is CredentialUnavailableError


def test_the_budget_bounds_the_total() -> None:
    # Hints of 60 s: the second retry would bring the sleeps to 120 s > 90 s, so it is not made.
    busy = json_reply(429, {"error": "throttled"}, headers=(("Retry-After", "60"),))
    error, io = fail(make(), busy, None, busy)
    assert sleeps(io) == [60.0]
    assert isinstance(error, AuthError)
    assert error.status == 429
    # The whole 410 schedule fits: 75 s.
    gone = json_reply(410, {"error": "gone"})
    replies: list[object] = [gone]
    for _ in range(5):
        replies += [None, gone]
    error, io = fail(make(), *replies)  # type: ignore[arg-type]
    assert sleeps(io) == [0.0, 5.0, 10.0, 20.0, 40.0]
    assert sum(sleeps(io)) <= IMDS_POLICY.budget


def test_a_policy_without_slow_delays_stops_after_a_slow_status() -> None:
    policy = RetryPolicy(frozenset({410}), frozenset(), (0.0, 1.0), 60.0, slow_statuses=frozenset({410}))
    request = HttpRequest("GET", "http://127.0.0.1/")
    flow = send_with_retry(request, policy, NOW)
    assert next(flow) == request
    with pytest.raises(StopIteration) as stop:
        flow.send(HttpResponse(410))
    assert stop.value.value == (HttpResponse(410), NOW)


def test_400_is_not_retried_and_names_the_selector() -> None:
    bad = json_reply(400, {"error": "invalid_request", "error_description": "Identity not found"})
    error, io = fail(make(client_id="c-1"), bad)
    assert len(io.seen) == 1
    assert type(error) is NotConfiguredError
    assert str(error).startswith(
        "ManagedIdentityCredential (imds): the client_id 'c-1' identity is not available here (HTTP 400): "
    )
    assert "Identity not found" in str(error)
    error, _ = fail(make(), HttpResponse(400, (), b"Required metadata header not specified"))
    assert type(error) is NotConfiguredError
    assert "system-assigned" in str(error)


# -- §4.3's IMDS rows --


def test_docker_desktops_403_is_unavailable() -> None:
    # The body Docker Desktop's proxy answers with (§4.3's row expects "unreachable" in it).
    body = b"connecting to 169.254.169.254:80: connectex: attempted to an Unreachable network."  # expected
    error, io = fail(make(), HttpResponse(403, (), body))
    assert len(io.seen) == 1
    assert type(error) is CredentialUnavailableError
    assert "unreachable (HTTP 403)" in str(error)
    # Another 403 is the service refusing.
    error, _ = fail(make(), json_reply(403, {"error": "forbidden"}))
    assert isinstance(error, AuthError)
    assert error.status == 403


@pytest.mark.parametrize("status", [200, 500, 404])
def test_a_reply_that_is_not_json_is_not_imds(status: int) -> None:
    replies: list[object] = [HttpResponse(status, (), b"<html>hello</html>")]
    if status != 200:
        replies = [HttpResponse(status, (), b"")]
        for _ in range(5):
            replies += [None, HttpResponse(status, (), b"")]
    error, _ = fail(make(), *replies)  # type: ignore[arg-type]
    assert type(error) is CredentialUnavailableError
    assert f"the reply (HTTP {status}) is not JSON, so the endpoint is not IMDS" in str(error)


def test_other_refusals_and_unreadable_tokens() -> None:
    service_id = (("x-ms-request-id", "svc-1"),)
    error, _ = fail(make(), json_reply(401, {"error": "unauthorized", "error_description": "no"}, service_id))
    assert isinstance(error, AuthError)
    assert (error.status, error.error, error.request_id) == (401, "unauthorized", base_headers()[1][1])
    assert "x-ms-request-id: svc-1" in str(error)
    error, _ = fail(make(), json_reply(200, {"access_token": TOKEN}))
    assert isinstance(error, ProtocolError)
    assert error.field == "expires_in"
    error, _ = fail(make(), TransportError("too_large", "over 1 MiB"))
    assert isinstance(error, ProtocolError)


# -- expiry (§0.6, §4.2) --


def test_the_half_life_vector() -> None:
    info, _ = get(make(), token_reply(expires_in="86400", expires_on=str(int(NOW) + 86400)))
    assert (info.expires_on, info.refresh_on) == (NOW + 86400, NOW + 43200)


@pytest.mark.parametrize(
    ("fields", "expires_on"),
    [
        ({"expires_in": "3600", "expires_on": "1"}, NOW + 3600),  # expires_in first (§4.2)
        ({"expires_in": 3600}, NOW + 3600),
        ({"expires_on": str(int(NOW) + 600)}, NOW + 600),
        ({"expires_on": "11/14/2023 10:30:00 PM +00:00"}, NOW + 1000),
        ({"expires_on": "2023-11-14T22:30:00Z"}, NOW + 1000),
    ],
)
def test_expiry_forms(fields: dict[str, object], expires_on: float) -> None:
    info, _ = get(make(), token_reply(**fields))
    assert info.expires_on == expires_on


def test_retries_move_the_clock_the_token_is_read_with() -> None:
    # Slept 1.6 s in all: expires_in counts from the last reply, at NOW + 1.6 (the adapter's clock).
    info, _ = get(make(), SERVER_ERROR, NOW, SERVER_ERROR, NOW + 1.6, OK)
    assert info.expires_on == int(NOW + 1.6) + 3600


# -- the probe (§4.5) --


def probe_of(request: HttpRequest) -> HttpRequest:
    return request._replace(headers=request.headers[:-1], timeout=1.0, connect_timeout=1.0, bypass_proxy=True)


def test_in_a_chain_the_probe_comes_first_and_is_remembered() -> None:
    cred = make(client_id="c-1")
    required = json_reply(400, {"error": "invalid_request", "error_description": "Required metadata header"})
    info, io = get(cred, required, OK, in_chain=True)
    probe, token_get = io.seen
    assert isinstance(probe, HttpRequest)
    assert isinstance(token_get, HttpRequest)
    assert probe == probe_of(token_get)
    assert ("Metadata", "true") not in probe.headers
    assert token_get.headers[-1] == ("Metadata", "true")
    assert info.token == TOKEN
    # IMDS is here: no probe again for this object, and the token GET has policy I.
    _, io = get(cred, SERVER_ERROR, None, OK, in_chain=True, scope="https://storage.azure.com/.default")
    assert len(requests(io)) == 2
    assert sleeps(io) == [0.0]


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (TransportError("timeout", "no answer"), "timeout"),
        (TransportError("connect", "refused"), "connect"),
        (TransportError("closed", "reset"), "closed"),
    ],
)
def test_a_probe_failure_is_unavailable_and_remembered(reply: TransportError, kind: str) -> None:
    cred = make(imds_probe_ttl=60)
    error, io = fail(cred, reply, in_chain=True)
    assert len(io.seen) == 1
    assert type(error) is CredentialUnavailableError
    assert str(error) == f"ManagedIdentityCredential (imds): IMDS did not answer within 1 s ({kind})"
    assert error.__cause__ is reply
    # Remembered for the TTL: raised at once, with no effect; the message counts.
    error, io = fail(cred, now=NOW + 12.5, in_chain=True)
    assert io.seen == []
    assert str(error) == (
        f"ManagedIdentityCredential (imds): the IMDS probe failed 12 s ago ({kind}); next try in 48 s"
    )
    # Standalone callers of the same object see the same memory.
    error, io = fail(cred, now=NOW + 59.9)
    assert io.seen == []
    assert "next try in 1 s" in str(error)
    # After the TTL, the probe runs again.
    _, io = get(cred, HttpResponse(400), OK, now=NOW + 60, in_chain=True)
    assert len(io.seen) == 2


def test_a_probe_answered_by_docker_desktops_403_is_unavailable() -> None:
    cred = make()
    error, io = fail(cred, HttpResponse(403, (), b"connect: network is unreachable"), in_chain=True)
    assert len(io.seen) == 1
    assert type(error) is CredentialUnavailableError
    assert "the network to IMDS is unreachable (HTTP 403)" in str(error)
    error, _ = fail(cred, now=NOW + 1, in_chain=True)
    assert "probe failed 1 s ago (HTTP 403); next try in 59 s" in str(error)


def test_a_zero_ttl_remembers_nothing() -> None:
    cred = make(imds_probe_ttl=0)
    fail(cred, REFUSED, in_chain=True)
    _, io = get(cred, HttpResponse(400), OK, in_chain=True)
    assert len(io.seen) == 2


@pytest.mark.parametrize(
    ("options", "env", "in_chain", "probes"),
    [
        ({}, {}, False, False),  # standalone: no probe
        ({}, {}, True, True),
        ({"imds_probe": True}, {}, False, True),  # forced
        ({"imds_probe": False}, {}, True, False),  # DAC limited to managed identity
        ({"imds_endpoint": "http://127.0.0.1:9"}, {}, True, False),  # an explicit endpoint exists
        ({"imds_endpoint": "http://127.0.0.1:9", "imds_probe": True}, {}, False, True),
        ({}, {"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9"}, True, False),
    ],
)
def test_when_the_probe_runs(
    options: dict[str, object], env: dict[str, str], in_chain: bool, probes: bool
) -> None:
    cred = make(env, **options)
    replies = (HttpResponse(400), OK) if probes else (OK,)
    _, io = get(cred, *replies, in_chain=in_chain)
    first = requests(io)[0]
    assert (first.timeout == 1.0) is probes
    assert (("Metadata", "true") not in first.headers) is probes


def test_in_a_chain_without_a_probe_a_refused_first_request_is_unavailable_at_once() -> None:
    cred = make(imds_endpoint="http://127.0.0.1:9")
    error, io = fail(cred, REFUSED, in_chain=True)
    assert len(io.seen) == 1  # no retry, no sleep
    assert type(error) is CredentialUnavailableError
    assert "http://127.0.0.1:9/metadata/identity/oauth2/token is unreachable (connect)" in str(error)
    error, io = fail(cred, now=NOW + 30, in_chain=True)
    assert io.seen == []
    assert str(error) == (
        "ManagedIdentityCredential (imds): the endpoint refused a connection 30 s ago (connect); "
        "next try in 30 s"
    )


def test_after_a_probe_the_token_get_keeps_policy_i_but_no_connect_retries_in_a_chain() -> None:
    cred = make()
    error, io = fail(cred, HttpResponse(400), SERVER_ERROR, None, REFUSED, in_chain=True)
    assert sleeps(io) == [0.0]
    assert type(error) is CredentialUnavailableError
    # Not a remembered failure: the next call tries (the probe is not repeated).
    _, io = get(cred, OK, in_chain=True)
    assert len(io.seen) == 1


def test_concurrent_callers_share_one_probe() -> None:
    cred = make()
    flights = FlightTable(threading.Event)
    chain_call = TokenCall((SCOPE,), None, None, False, True)
    leader = acquire_flow(cred, chain_call, flights, NOW)
    waiter = acquire_flow(cred, chain_call, flights, NOW)
    probe = next(leader)
    assert isinstance(probe, HttpRequest)
    assert probe.timeout == 1.0
    assert isinstance(next(waiter), AwaitFlight)
    token_get = leader.send(HttpResponse(400))
    assert isinstance(token_get, HttpRequest)
    assert token_get.headers[-1] == ("Metadata", "true")
    with pytest.raises(StopIteration) as done:
        leader.send(OK)
    with pytest.raises(StopIteration) as served:
        waiter.send(NOW)
    assert served.value.value.token == done.value.value.token == TOKEN


@pytest.mark.parametrize(
    ("option", "value"),
    [("imds_probe", "yes"), ("imds_probe", 1), ("imds_probe_ttl", -1), ("imds_probe_ttl", True)],
)
def test_probe_options_are_checked(option: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"^ManagedIdentityCredential: {option} is invalid"):
        make(**{option: value})  # type: ignore[arg-type]


def test_imds_probe_ttl_infinity_is_refused() -> None:
    with pytest.raises(ConfigError, match="imds_probe_ttl"):
        make(imds_probe_ttl=float("inf"))


def test_sleep_effects_are_the_only_waits() -> None:
    _, io = get(make(), SERVER_ERROR, None, OK)
    assert [type(effect) for effect in io.seen] == [HttpRequest, Sleep, HttpRequest]
