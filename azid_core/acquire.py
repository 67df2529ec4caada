"""get_token as one flow: cache plan, single-flight, fetch, store, fallback (PROTOCOL.md §7).

Written once and driven by every adapter, sync or async. The credential supplies two things: the
canonical cache key of a call, and the flow that fetches a token from its service.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, NamedTuple, Protocol

from .cache import Fetch, Serve
from .effects import AwaitFlight
from .errors import AzidError
from .flight import HANDOVER, Follow, Handover, Lead
from .logs import debug
from .wire import sleep

if TYPE_CHECKING:
    from .cache import CacheEntry, CacheKey, CallKey, TokenCache
    from .effects import Flow
    from .flight import FlightTable
    from .tokens import AccessTokenInfo

__all__ = ["TokenCall", "TokenSource", "acquire_alone", "acquire_flow"]


class TokenCall(NamedTuple):
    """One get_token call as the caller made it; `in_chain` when a chain asks a member (§6.1)."""

    scopes: tuple[str, ...]
    claims: str | None
    tenant_id: str | None
    enable_cae: bool
    in_chain: bool = False

    @property
    def call_key(self) -> CallKey:
        return (self.scopes, self.tenant_id, self.enable_cae)


class TokenSource(Protocol):
    """What a core credential offers `acquire_flow`."""

    @property
    def token_cache(self) -> TokenCache: ...

    def cache_key(self, call: TokenCall) -> CacheKey:
        """Check the call's options and return its canonical key; raises ConfigError."""
        ...

    def fetch_flow(self, call: TokenCall, key: CacheKey, now: float) -> Flow[AccessTokenInfo]:
        """Ask the service for a token."""
        ...


def _serve(cache: TokenCache, call: TokenCall, key: CacheKey, entry: CacheEntry) -> AccessTokenInfo:
    cache.remember(call.call_key, key)
    return entry.info


def acquire_flow(
    source: TokenSource, call: TokenCall, flights: FlightTable, now: float
) -> Flow[AccessTokenInfo]:
    """Return a token for `call`: from the cache, from another caller's flight, or fetched.

    Yields:  AwaitFlight while another caller fetches the same key; the source's effects.
    Raises:  what the fetch raises, unless a still-valid token can be served instead (§7.2); a
             waiter whose leader failed raises a copy of the leader's error (cause: the original).
    """
    key = source.cache_key(call)
    cache = source.token_cache
    while True:
        plan = cache.plan(key, now, call.claims)
        if isinstance(plan, Serve):
            debug("cache", "%s: served from the cache", key[3])
            return _serve(cache, call, key, plan.entry)
        ticket = flights.enter(key, with_claims=bool(call.claims))
        if isinstance(ticket, Follow):
            if ticket.event is not None:
                woke = yield AwaitFlight(ticket.event)
                now = woke if isinstance(woke, (int, float)) else now
            outcome = ticket.flight.outcome
            # A failed leader's error is shared only by waiters who asked the same thing: a
            # claims request (either side) fails on its own, and the next one tries again.
            if isinstance(outcome, BaseException) and not call.claims and not ticket.flight.with_claims:
                replan = cache.plan(key, now, None)
                if isinstance(replan, Serve):
                    return _serve(cache, call, key, replan.entry)
                if replan.fallback is not None:
                    return _serve(cache, call, key, replan.fallback)
                error = copy.copy(outcome)
                raise error from outcome
            continue  # the leader stored a token, or handed over: plan again
        return (yield from _lead(source, call, key, flights, ticket, plan, now))


def _lead(
    source: TokenSource,
    call: TokenCall,
    key: CacheKey,
    flights: FlightTable,
    ticket: Lead,
    plan: Fetch,
    now: float,
) -> Flow[AccessTokenInfo]:
    cache = source.token_cache
    # Whatever happens, the flight ends and its waiters wake. Until the fetch has an outcome, it
    # is a cancellation (GeneratorExit, trio.Cancelled, ...): waiters plan again, one of them leads.
    outcome: BaseException | Handover | None = HANDOVER
    try:
        try:
            info = yield from source.fetch_flow(call, key, now)
        except Exception as exc:
            outcome = exc
            if not isinstance(exc, AzidError) or plan.fallback is None or call.claims:
                raise
            # Serve the old token while it lasts; the next try waits 30 s from now (§7.2). A zero
            # sleep reads the clock: retries may have taken a minute since the fetch began.
            failed_at = yield from sleep(0.0, now)
            cache.note_failure(key, failed_at)
            debug("cache", "%s: refresh failed, serving the cached token: %s", key[3], exc)
            return _serve(cache, call, key, plan.fallback)
        entry = cache.store(key, info, now)
        outcome = None
        debug("cache", "%s: stored a token expiring at %d", key[3], info.expires_on)
        return _serve(cache, call, key, entry)
    finally:
        flights.leave(key, ticket.flight, outcome)


class _Unshared:
    """The event kind of a flight table nobody else can join: with no waiter, none is ever made."""

    def set(self) -> None:
        """Nobody to wake."""


def acquire_alone(source: TokenSource, call: TokenCall, now: float) -> Flow[AccessTokenInfo]:
    """`acquire_flow` run inside another flow (a chain's member, a managed identity's token as an
    assertion): the source's cache and refresh rules, in a flight of its own. Waiting on another
    caller's flight would need the adapter's kind of event, which a core flow does not have; the
    outer flow's own flight already keeps its callers to one request."""
    from .flight import FlightTable

    return (yield from acquire_flow(source, call, FlightTable(_Unshared), now))
