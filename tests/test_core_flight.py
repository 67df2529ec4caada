"""acquire_flow and FlightTable: cache plans, fallback and single-flight (PROTOCOL.md §7.2, §7.3).

Flows are stepped by hand, so "concurrent" callers interleave exactly as each test says. The
events are fakes that record `set()`; waiting is the AwaitFlight effect.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from azid_core.acquire import TokenCall, acquire_flow
from azid_core.cache import Fetch, Serve
from azid_core.drive import run
from azid_core.effects import AwaitFlight, HttpRequest, HttpResponse, Sleep
from azid_core.entra.confidential import ClientSecretCredential
from azid_core.errors import AuthError, ConfigError, CredentialUnavailableError, TransportError
from azid_core.flight import HANDOVER, Flight, FlightTable, Follow, Lead
from azid_core.testing import ScriptedIO

if TYPE_CHECKING:
    from azid_core.effects import Effect, Flow, Reply
    from azid_core.tokens import AccessTokenInfo

T0 = 1_700_000_000.0
SCOPE = "https://vault.azure.net/.default"
SECRET = "flight-secret-value"


class FakeEvent:
    def __init__(self) -> None:
        self.set_calls = 0

    def set(self) -> None:
        self.set_calls += 1


class Events:
    def __init__(self) -> None:
        self.made: list[FakeEvent] = []

    def __call__(self) -> FakeEvent:
        event = FakeEvent()
        self.made.append(event)
        return event


def credential(**kwargs: Any) -> ClientSecretCredential:
    return ClientSecretCredential(
        "tenant-a", "client-a", SECRET, env={}, entropy=lambda n: b"\0" * n, **kwargs
    )


def call(
    claims: str | None = None, tenant_id: str | None = None, cae: bool = False, *scopes: str
) -> TokenCall:
    return TokenCall(scopes or (SCOPE,), claims, tenant_id, cae)


def token_reply(token: str = "tok-1", expires_in: int = 3600, **extra: Any) -> HttpResponse:
    body = {"access_token": token, "expires_in": expires_in, "token_type": "Bearer", **extra}
    return HttpResponse(200, (), json.dumps(body).encode())


REFUSED = HttpResponse(401, (), json.dumps({"error": "invalid_client", "error_codes": [7000215]}).encode())


def finish(flow: Flow[AccessTokenInfo], reply: Reply) -> AccessTokenInfo:
    """Send the last reply a flow needs and return its result."""
    with pytest.raises(StopIteration) as stop:
        flow.send(reply)
    result: AccessTokenInfo = stop.value.value
    return result


def served_at_once(flow: Flow[AccessTokenInfo]) -> AccessTokenInfo:
    """A flow that needs no effect at all: a cache hit."""
    with pytest.raises(StopIteration) as stop:
        next(flow)
    result: AccessTokenInfo = stop.value.value
    return result


def acquire(
    cred: ClientSecretCredential, token_call: TokenCall, now: float, *replies: Reply | BaseException
) -> tuple[AccessTokenInfo, list[Effect]]:
    io = ScriptedIO(*replies)
    result = run(acquire_flow(cred, token_call, FlightTable(Events()), now), io)
    assert io.unused == 0
    return result, io.seen


def leader_and_follower(
    cred: ClientSecretCredential, flights: FlightTable, now: float
) -> tuple[Flow[AccessTokenInfo], Flow[AccessTokenInfo]]:
    """Two plain callers of one key, started: the leader has sent its request, the follower waits."""
    leader = acquire_flow(cred, call(), flights, now)
    follower = acquire_flow(cred, call(), flights, now)
    next(leader)
    next(follower)
    return leader, follower


def request_body(effect: Effect) -> str:
    assert isinstance(effect, HttpRequest)
    return effect.body.decode()


# -- FlightTable on its own --


def test_flight_table_lead_follow_leave() -> None:
    events = Events()
    table = FlightTable(events)
    lead = table.enter("k")
    assert isinstance(lead, Lead)
    assert events.made == []  # a leader alone makes no event
    assert len(table) == 1
    follow = table.enter("k")
    assert isinstance(follow, Follow)
    assert follow.flight is lead.flight
    assert follow.event is events.made[0]
    second = table.enter("k")
    assert isinstance(second, Follow)
    assert second.event is follow.event  # one event for all waiters
    other = table.enter("other")
    assert isinstance(other, Lead)
    assert len(table) == 2
    assert len(events.made) == 1
    error = RuntimeError("x")
    table.leave("k", lead.flight, error)
    assert lead.flight.outcome is error
    assert lead.flight.landed
    assert events.made[0].set_calls == 1
    assert len(table) == 1
    # Leaving a flight that is no longer the current one wakes its waiters and leaves the new one.
    again = table.enter("k")
    assert isinstance(again, Lead)
    table.leave("k", lead.flight, None)
    assert len(table) == 2
    table.leave("k", again.flight, HANDOVER)
    table.leave("other", other.flight, None)
    assert len(table) == 0
    assert repr(HANDOVER) == "HANDOVER"


def test_flight_starts_without_an_outcome() -> None:
    flight = Flight(with_claims=True)
    assert flight.with_claims
    assert flight.outcome is None
    assert not flight.landed


def test_a_waiter_joining_as_the_flight_lands_does_not_wait() -> None:
    # Another thread's leader may land between a waiter's `setdefault` on the table and its look at
    # the flight: the event it publishes then is never set, so it must not wait on it.
    events = Events()
    flight = Flight(with_claims=False)
    flight.land(None)  # no waiter yet: nothing to set
    assert events.made == []
    assert flight.event_to_await(events) is None
    assert flight.outcome is None


def test_a_landing_flight_sets_the_event_its_waiters_published() -> None:
    events = Events()
    flight = Flight(with_claims=False)
    event = flight.event_to_await(events)
    assert event is events.made[0]
    assert flight.event_to_await(events) is event
    error = RuntimeError("x")
    flight.land(error)
    assert events.made[0].set_calls == 1
    assert flight.outcome is error


# -- one caller --


def test_miss_then_store_then_hit() -> None:
    cred = credential()
    token, seen = acquire(cred, call(), T0, token_reply("tok-1"))
    assert token.token == "tok-1"
    assert [type(effect) for effect in seen] == [HttpRequest]
    entry = cred.token_cache.serve(((SCOPE,), None, False), T0)
    assert entry is not None
    assert entry.info is token
    assert entry.last_attempt == T0  # a successful fetch sets last_attempt
    # Served from the cache without any effect.
    again = served_at_once(acquire_flow(cred, call(), FlightTable(Events()), T0 + 100))
    assert again is token


def test_hit_is_remembered_for_new_call_shapes() -> None:
    cred = credential()
    acquire(cred, call(), T0, token_reply())
    spelled = TokenCall((SCOPE, SCOPE), None, "tenant-a", False)
    assert cred.token_cache.serve(spelled.call_key, T0) is None
    served_at_once(acquire_flow(cred, spelled, FlightTable(Events()), T0 + 1))
    assert cred.token_cache.serve(spelled.call_key, T0 + 2) is not None


def test_refresh_past_refresh_on() -> None:
    cred = credential()
    acquire(cred, call(), T0, token_reply("tok-1", refresh_in=600))
    token, seen = acquire(cred, call(), T0 + 601, token_reply("tok-2"))
    assert token.token == "tok-2"
    assert len(seen) == 1


def test_failure_with_a_valid_token_serves_it_and_notes_the_attempt(caplog: pytest.LogCaptureFixture) -> None:
    cred = credential()
    first, _ = acquire(cred, call(), T0, token_reply("tok-1", refresh_in=600))
    caplog.set_level(logging.DEBUG, logger="azid")
    # After the failure a zero sleep reads the clock; the adapter says it is now T0 + 702.
    token, seen = acquire(cred, call(), T0 + 700, REFUSED, T0 + 702)
    assert token is first
    assert isinstance(seen[0], HttpRequest)
    assert seen[1:] == [Sleep(0.0)]
    plan = cred.token_cache.plan(cred.cache_key(call()), T0 + 702, None)
    assert isinstance(plan, Serve)
    assert plan.entry.last_attempt == T0 + 702
    assert any("refresh failed, serving the cached token" in r.getMessage() for r in caplog.records)
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    # Within 30 s of the failure: served without asking; from then on: asks again.
    assert served_at_once(acquire_flow(cred, call(), FlightTable(Events()), T0 + 731)) is first
    token, seen = acquire(cred, call(), T0 + 732, token_reply("tok-2"))
    assert token.token == "tok-2"
    assert [type(effect) for effect in seen] == [HttpRequest]


def test_transport_failure_with_a_valid_token_is_served_too() -> None:
    cred = credential()
    first, _ = acquire(cred, call(), T0, token_reply("tok-1", expires_in=1000))
    # A clock reply of None: the failure time is the flow's own clock.
    token, seen = acquire(cred, call(), T0 + 800, TransportError("timeout", "slow"), None)
    assert token is first
    assert isinstance(seen[0], HttpRequest)
    assert seen[1:] == [Sleep(0.0)]
    plan = cred.token_cache.plan(cred.cache_key(call()), T0 + 829, None)
    assert isinstance(plan, Serve)
    assert plan.entry.last_attempt == T0 + 800
    assert isinstance(cred.token_cache.plan(cred.cache_key(call()), T0 + 830, None), Fetch)


def test_failure_without_a_token_raises() -> None:
    cred = credential()
    with pytest.raises(AuthError):
        acquire(cred, call(), T0, REFUSED)
    with pytest.raises(CredentialUnavailableError):
        acquire(cred, call(), T0, TransportError("closed", "reset"))
    assert len(cred.token_cache) == 0


def test_expired_token_is_never_a_fallback() -> None:
    cred = credential()
    acquire(cred, call(), T0, token_reply("tok-1", expires_in=1000))
    with pytest.raises(AuthError):
        acquire(cred, call(), T0 + 1000, REFUSED)


def test_bad_options_fail_before_any_effect() -> None:
    cred = credential()
    for bad in (TokenCall((), None, None, False), call(tenant_id="tenant-x"), call(claims="nope", cae=True)):
        flow = acquire_flow(cred, bad, FlightTable(Events()), T0)
        with pytest.raises(ConfigError):
            next(flow)


def test_log_records_on_store_and_hit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="azid")
    cred = credential()
    acquire(cred, call(), T0, token_reply())
    served_at_once(acquire_flow(cred, call(), FlightTable(Events()), T0 + 1))
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
    messages = [(r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name == "azid.cache"]
    identity = "secret:https://login.microsoftonline.com:client-a"
    assert messages == [
        ("azid.cache", logging.DEBUG, f"{identity}: stored a token expiring at {int(T0) + 3600}"),
        ("azid.cache", logging.DEBUG, f"{identity}: served from the cache"),
    ]


# -- claims, tenant, CAE --


def test_claims_bypass_the_cache_read_and_store_the_result() -> None:
    cred = credential()
    first, _ = acquire(cred, call(), T0, token_reply("tok-1"))
    claims = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'
    token, seen = acquire(cred, call(claims=claims), T0 + 10, token_reply("tok-claims"))
    assert token.token == "tok-claims"
    assert "claims=" in request_body(seen[0])
    # The result replaced the cached token for the key.
    assert served_at_once(acquire_flow(cred, call(), FlightTable(Events()), T0 + 20)) is token
    assert first is not token


def test_claims_failure_raises_even_with_a_valid_token() -> None:
    cred = credential()
    acquire(cred, call(), T0, token_reply("tok-1"))
    with pytest.raises(AuthError):
        acquire(cred, call(claims='{"x":1}'), T0 + 10, REFUSED)


def test_tenant_and_cae_make_separate_entries() -> None:
    cred = credential(additionally_allowed_tenants=["tenant-b"])
    calls = [call(), call(tenant_id="tenant-b"), call(cae=True), call(tenant_id="tenant-b", cae=True)]
    tokens = []
    for n, token_call in enumerate(calls):
        token, seen = acquire(cred, token_call, T0, token_reply(f"tok-{n}"))
        assert len(seen) == 1
        tokens.append(token)
    assert len(cred.token_cache) == 4
    for token_call, token in zip(calls, tokens, strict=True):
        assert (
            served_at_once(acquire_flow(cred, token_call, FlightTable(Events()), T0 + 1)).token == token.token
        )
    _, seen = acquire(cred, call(tenant_id="tenant-b", claims="{}"), T0, token_reply("tok-b-claims"))
    assert isinstance(seen[0], HttpRequest)
    assert "/tenant-b/oauth2/" in seen[0].url
    # The configured tenant named explicitly shares the default entry.
    named = served_at_once(acquire_flow(cred, call(tenant_id="tenant-a"), FlightTable(Events()), T0 + 1))
    assert named.token == "tok-0"
    # Scope order and duplicates do not split entries.
    two = TokenCall(("b", "a", "b"), None, None, False)
    acquire(cred, two, T0, token_reply("tok-ab"))
    same = TokenCall(("a", "b"), None, None, False)
    assert served_at_once(acquire_flow(cred, same, FlightTable(Events()), T0)).token == "tok-ab"


# -- single-flight (§7.3) --


def test_second_caller_waits_and_is_served_from_the_cache() -> None:
    cred = credential()
    events = Events()
    flights = FlightTable(events)
    leader = acquire_flow(cred, call(), flights, T0)
    follower = acquire_flow(cred, call(), flights, T0 + 1)
    request = next(leader)
    assert isinstance(request, HttpRequest)
    wait = next(follower)
    assert isinstance(wait, AwaitFlight)
    assert wait.event is events.made[0]
    assert events.made[0].set_calls == 0
    token = finish(leader, token_reply("tok-1"))
    assert events.made[0].set_calls == 1
    assert len(flights) == 0
    assert finish(follower, T0 + 2) is token  # no request of its own


def test_a_follower_whose_leader_lands_as_it_joins_is_served_without_waiting() -> None:
    # The threads' race, in one thread: the leader lands while the follower makes its event (after
    # the follower found the flight in the table, before it looks at `landed`).
    cred = credential()
    landed: list[AccessTokenInfo] = []

    def event_while_the_leader_lands() -> FakeEvent:
        landed.append(finish(leader, token_reply("tok-1")))
        return FakeEvent()

    flights = FlightTable(event_while_the_leader_lands)
    leader = acquire_flow(cred, call(), flights, T0)
    assert isinstance(next(leader), HttpRequest)
    follower = acquire_flow(cred, call(), flights, T0 + 1)
    assert served_at_once(follower) is landed[0]  # no AwaitFlight: the flight had landed
    assert len(flights) == 0


def test_many_followers_are_all_served() -> None:
    cred = credential()
    events = Events()
    flights = FlightTable(events)
    leader = acquire_flow(cred, call(), flights, T0)
    followers = [acquire_flow(cred, call(), flights, T0) for _ in range(3)]
    next(leader)
    waits = [next(f) for f in followers]
    assert all(isinstance(w, AwaitFlight) and w.event is events.made[0] for w in waits)
    token = finish(leader, token_reply())
    assert [finish(f, None) for f in followers] == [token, token, token]  # None: keep the old clock


def test_follower_of_a_failed_leader_raises_a_copy() -> None:
    cred = credential()
    flights = FlightTable(Events())
    leader, follower = leader_and_follower(cred, flights, T0)
    with pytest.raises(AuthError) as lead_info:
        leader.send(REFUSED)
    with pytest.raises(AuthError) as follow_info:
        follower.send(T0 + 1)
    original, copied = lead_info.value, follow_info.value
    assert copied is not original
    assert type(copied) is type(original)
    assert str(copied) == str(original)
    assert copied.__cause__ is original
    assert (copied.status, copied.error, copied.error_codes) == (401, "invalid_client", (7000215,))
    assert len(flights) == 0


def test_follower_of_a_failed_leader_serves_the_old_token() -> None:
    cred = credential()
    first, _ = acquire(cred, call(), T0, token_reply("tok-1", refresh_in=600))
    events = Events()
    flights = FlightTable(events)
    leader = acquire_flow(cred, call(), flights, T0 + 700)
    follower = acquire_flow(cred, call(), flights, T0 + 700)
    next(leader)
    assert isinstance(next(follower), AwaitFlight)
    assert leader.send(REFUSED) == Sleep(0.0)
    # While the leader reads the clock its flight is still in the air: the waiter is not woken yet.
    assert (len(flights), events.made[0].set_calls) == (1, 0)
    assert finish(leader, T0 + 701) is first
    assert (len(flights), events.made[0].set_calls) == (0, 1)
    assert finish(follower, T0 + 705) is first  # re-plan: a recent attempt, Serve
    plan = cred.token_cache.plan(cred.cache_key(call()), T0 + 705, None)
    assert isinstance(plan, Serve)
    assert plan.entry.last_attempt == T0 + 701


def test_follower_waking_late_still_gets_the_fallback() -> None:
    cred = credential()
    first, _ = acquire(cred, call(), T0, token_reply("tok-1", refresh_in=600))
    flights = FlightTable(Events())
    leader, follower = leader_and_follower(cred, flights, T0 + 700)
    assert leader.send(REFUSED) == Sleep(0.0)
    assert finish(leader, T0 + 700) is first
    # 40 s later the re-plan says Fetch(fallback); a waiter does not start a second try for it.
    assert isinstance(cred.token_cache.plan(cred.cache_key(call()), T0 + 740, None), Fetch)
    assert finish(follower, T0 + 740) is first


def test_cancelled_leader_hands_over() -> None:
    cred = credential()
    events = Events()
    flights = FlightTable(events)
    leader, follower = leader_and_follower(cred, flights, T0)
    leader.close()  # what the drive loop does on cancellation
    assert events.made[0].set_calls == 1
    assert len(flights) == 0
    request = follower.send(T0 + 1)  # re-plan: no token, no flight: it leads now
    assert isinstance(request, HttpRequest)
    assert len(flights) == 1
    token = finish(follower, token_reply("tok-2"))
    assert token.token == "tok-2"
    assert len(flights) == 0


def test_cancelled_leader_during_a_retry_sleep_hands_over() -> None:
    cred = credential()
    flights = FlightTable(Events())
    leader, follower = leader_and_follower(cred, flights, T0)
    assert leader.send(HttpResponse(503, (), b"")) == Sleep(0.0)
    leader.close()
    assert isinstance(follower.send(None), HttpRequest)


def test_cancelled_leader_while_reading_the_clock_after_a_failure_hands_over() -> None:
    cred = credential()
    acquire(cred, call(), T0, token_reply("tok-1", refresh_in=600))
    events = Events()
    flights = FlightTable(events)
    leader, _waiting = leader_and_follower(cred, flights, T0 + 700)
    assert leader.send(REFUSED) == Sleep(0.0)
    leader.close()  # cancelled in the zero sleep
    assert events.made[0].set_calls == 1
    assert len(flights) == 0


def test_leader_bug_is_passed_to_followers() -> None:
    cred = credential()
    flights = FlightTable(Events())
    leader, follower = leader_and_follower(cred, flights, T0)
    bug = RuntimeError("adapter bug")
    with pytest.raises(RuntimeError) as lead_info:
        leader.throw(bug)
    assert lead_info.value is bug
    with pytest.raises(RuntimeError) as follow_info:
        follower.send(T0)
    assert follow_info.value is not bug
    assert follow_info.value.__cause__ is bug
    assert str(follow_info.value) == "adapter bug"


def test_claims_follower_starts_its_own_flight_after_a_success() -> None:
    cred = credential()
    flights = FlightTable(Events())
    leader = acquire_flow(cred, call(), flights, T0)
    claims = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'
    follower = acquire_flow(cred, call(claims=claims), flights, T0)
    next(leader)
    assert isinstance(next(follower), AwaitFlight)
    finish(leader, token_reply("tok-plain"))
    request = follower.send(T0 + 1)
    assert isinstance(request, HttpRequest)
    assert "claims=" in request_body(request)
    assert finish(follower, token_reply("tok-claims")).token == "tok-claims"


def test_claims_follower_starts_its_own_flight_after_a_failure() -> None:
    cred = credential()
    flights = FlightTable(Events())
    leader = acquire_flow(cred, call(), flights, T0)
    follower = acquire_flow(cred, call(claims='{"x":1}'), flights, T0)
    next(leader)
    next(follower)
    with pytest.raises(AuthError):
        leader.send(REFUSED)
    request = follower.send(T0 + 1)
    assert isinstance(request, HttpRequest)
    assert finish(follower, token_reply("tok-claims")).token == "tok-claims"


def test_a_failed_claims_leader_does_not_fail_plain_waiters() -> None:
    # The claims request asked for something else (a step-up, say): its refusal is not the
    # plain caller's answer, so the plain caller asks for itself.
    cred = credential()
    flights = FlightTable(Events())
    leader = acquire_flow(cred, call(claims='{"x":1}'), flights, T0)
    follower = acquire_flow(cred, call(), flights, T0)
    next(leader)
    assert isinstance(next(follower), AwaitFlight)
    with pytest.raises(AuthError):
        leader.send(REFUSED)
    request = follower.send(T0 + 1)
    assert isinstance(request, HttpRequest)
    assert "claims=" not in request_body(request)
    assert finish(follower, token_reply("tok-plain")).token == "tok-plain"


def test_claims_caller_follows_a_flight_in_the_air() -> None:
    # Two claims callers: the second waits for the first, then fetches again (claims never share).
    cred = credential()
    flights = FlightTable(Events())
    first = acquire_flow(cred, call(claims='{"a":1}'), flights, T0)
    second = acquire_flow(cred, call(claims='{"a":1}'), flights, T0)
    next(first)
    assert isinstance(next(second), AwaitFlight)
    finish(first, token_reply("one"))
    assert isinstance(second.send(T0), HttpRequest)
    assert finish(second, token_reply("two")).token == "two"


def test_different_keys_fly_independently() -> None:
    cred = credential(additionally_allowed_tenants=["*"])
    flights = FlightTable(Events())
    a = acquire_flow(cred, call(), flights, T0)
    b = acquire_flow(cred, call(tenant_id="tenant-b"), flights, T0)
    c = acquire_flow(cred, call(cae=True), flights, T0)
    assert all(isinstance(next(flow), HttpRequest) for flow in (a, b, c))
    assert len(flights) == 3
    tokens = {finish(flow, token_reply(name)).token for flow, name in ((a, "a"), (b, "b"), (c, "c"))}
    assert tokens == {"a", "b", "c"}
    assert len(cred.token_cache) == 3


def test_follower_sees_a_token_stored_by_the_leader_even_if_short_lived() -> None:
    cred = credential()
    flights = FlightTable(Events())
    leader, follower = leader_and_follower(cred, flights, T0)
    token = finish(leader, token_reply("short", expires_in=200))
    assert finish(follower, T0 + 10) is token


def test_failed_refresh_after_retries_backs_off_from_the_failure_time() -> None:
    cred = credential()
    first, _ = acquire(cred, call(), T0, token_reply("tok-1", refresh_in=600))
    busy = HttpResponse(503, (), b"")
    # The leader starts at T0 + 700; its retries end, failing, at T0 + 760 (Sleep replies), and the
    # zero sleep after the failure reads the clock: T0 + 761.
    token, seen = acquire(
        cred, call(), T0 + 700, busy, T0 + 730, busy, T0 + 750, busy, T0 + 760, busy, T0 + 761
    )
    assert token is first
    assert seen[1::2] == [Sleep(0.0), Sleep(1.6), Sleep(3.2), Sleep(0.0)]
    assert all(isinstance(effect, HttpRequest) for effect in seen[::2])
    assert len(seen) == 8
    key = cred.cache_key(call())
    # The 30 s back-off counts from the failure (T0 + 761), not from the start of the refresh.
    for served_at in (T0 + 765, T0 + 790):
        plan = cred.token_cache.plan(key, served_at, None)
        assert isinstance(plan, Serve)
        assert plan.entry.last_attempt == T0 + 761
    assert served_at_once(acquire_flow(cred, call(), FlightTable(Events()), T0 + 790)) is first
    plan = cred.token_cache.plan(key, T0 + 791, None)
    assert isinstance(plan, Fetch)
    assert plan.fallback is not None
    assert plan.fallback.info is first
    token, seen = acquire(cred, call(), T0 + 791, token_reply("tok-2"))
    assert token.token == "tok-2"
    assert len(seen) == 1
