"""Single-flight: per cache key, at most one token request in flight (PROTOCOL.md §7.3).

The rule lives here; the waiting does not. An adapter supplies `new_event` (a `threading.Event`,
`anyio.Event` or `trio.Event` factory) and knows how to wait on what it made (`AwaitFlight`).
`enter` is one `dict.setdefault`, which is atomic under the GIL and needs no lock.
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
    __slots__ = ("event", "outcome", "with_claims")

    def __init__(self, event: Waitable, *, with_claims: bool) -> None:
        self.event = event
        # A leader sending claims asks something its waiters did not: its failure is not theirs.
        self.with_claims = with_claims
        # None: the token is in the cache. An exception: the leader failed. HANDOVER: cancelled.
        self.outcome: BaseException | Handover | None = None


class Lead(NamedTuple):
    flight: Flight


class Follow(NamedTuple):
    flight: Flight


class FlightTable:
    def __init__(self, new_event: Callable[[], Waitable]) -> None:
        self._new_event = new_event
        self._flights: dict[Hashable, Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def enter(self, key: Hashable, *, with_claims: bool = False) -> Lead | Follow:
        """Lead the flight for `key`, or follow the one already in the air."""
        mine = Flight(self._new_event(), with_claims=with_claims)
        current = self._flights.setdefault(key, mine)
        return Lead(mine) if current is mine else Follow(current)

    def leave(self, key: Hashable, flight: Flight, outcome: BaseException | Handover | None) -> None:
        """End `flight` with `outcome` and wake its waiters."""
        flight.outcome = outcome
        if self._flights.get(key) is flight:
            del self._flights[key]
        flight.event.set()
