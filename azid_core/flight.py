"""Single-flight: per cache key, at most one token request in flight (PROTOCOL.md §7.3).

The rule lives here; the waiting does not. An adapter supplies `new_event` (a `threading.Event`,
`anyio.Event` or `trio.Event` factory) and knows how to wait on what it made (`AwaitFlight`).
`enter` is one `dict.setdefault`, which is atomic under the GIL and needs no lock.

A flight's event is made by its first waiter, not by its leader: most fetches have no waiter, and
an event is a few microseconds of every first token. The waiter publishes the event (one more
`setdefault`) before it reads `landed`; the leader sets `landed` before it reads the event. So
either the leader sees the event and sets it, or the waiter sees the landing and does not wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

    from .effects import Waitable

__all__ = ["HANDOVER", "Flight", "FlightTable", "Follow", "Handover", "Lead"]


class Handover:
    """The outcome of a flight whose leader was cancelled: waiters plan again, one of them leads."""

    def __repr__(self) -> str:
        return "HANDOVER"


HANDOVER = Handover()


class Flight:
    __slots__ = ("_event", "landed", "outcome", "with_claims")

    def __init__(self, *, with_claims: bool) -> None:
        # A leader sending claims asks something its waiters did not: its failure is not theirs.
        self.with_claims = with_claims
        # None: the token is in the cache. An exception: the leader failed. HANDOVER: cancelled.
        self.outcome: BaseException | Handover | None = None
        self.landed = False
        self._event: dict[None, Waitable] = {}  # the waiters' event, under the one key None

    def event_to_await(self, new_event: Callable[[], Waitable]) -> Waitable | None:
        """The event that wakes this flight's waiters, made on the first call; None once the flight
        has landed (the outcome is there already)."""
        event = self._event.get(None)
        if event is None:
            event = self._event.setdefault(None, new_event())  # two first waiters keep one event
        return None if self.landed else event

    def land(self, outcome: BaseException | Handover | None) -> None:
        """Record `outcome` and wake the waiters, if any."""
        self.outcome = outcome
        self.landed = True
        event = self._event.get(None)
        if event is not None:
            event.set()


class Lead(NamedTuple):
    flight: Flight


class Follow(NamedTuple):
    flight: Flight
    event: Waitable | None  # None: the flight landed as we joined it


class FlightTable:
    def __init__(self, new_event: Callable[[], Waitable]) -> None:
        self._new_event = new_event
        self._flights: dict[Hashable, Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def enter(self, key: Hashable, *, with_claims: bool = False) -> Lead | Follow:
        """Lead the flight for `key`, or follow the one already in the air."""
        mine = Flight(with_claims=with_claims)
        current = self._flights.setdefault(key, mine)
        if current is mine:
            return Lead(mine)
        return Follow(current, current.event_to_await(self._new_event))

    def leave(self, key: Hashable, flight: Flight, outcome: BaseException | Handover | None) -> None:
        """End `flight` with `outcome` and wake its waiters."""
        if self._flights.get(key) is flight:
            del self._flights[key]
        flight.land(outcome)
