"""The per-credential token cache and its refresh rules (PROTOCOL.md §7.1, §7.2).

A plain class: no locks, no clock. Callers pass `now`. Each canonical key (sorted scopes, resolved
tenant, CAE, credential identity) has one slot holding an immutable entry; a new token replaces the
entry in one assignment, so readers on other threads see the old entry or the new one, never a mix.

`serve` is the hot path: callers' raw arguments index the slots directly, so a cached token costs
one dict lookup and one clock compare.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from .tokens import AccessToken

if TYPE_CHECKING:
    from typing import TypeAlias

    from .tokens import AccessTokenInfo

__all__ = ["CacheEntry", "CacheKey", "CallKey", "Fetch", "Plan", "Serve", "Slot", "TokenCache"]

EXPIRY_MARGIN = 300  # refresh when 5 minutes are left, whatever refresh_on says (§7.2)
RETRY_AFTER_FAILURE = 30  # after a failed refresh, serve the old token this long before trying again

CacheKey: TypeAlias = "tuple[tuple[str, ...], str, bool, str]"
CallKey: TypeAlias = "tuple[tuple[str, ...], str | None, bool]"


class CacheEntry(NamedTuple):
    info: AccessTokenInfo
    access_token: AccessToken
    serve_until: float  # min(refresh_on, expires_on - 300): before it, serve without a second thought
    last_attempt: float


class Serve(NamedTuple):
    entry: CacheEntry


class Fetch(NamedTuple):
    """Ask the service; on failure serve `fallback` if there is one (§7.2)."""

    fallback: CacheEntry | None


Plan: TypeAlias = Serve | Fetch


class Slot:
    """Where one key's current entry lives; a new token replaces `entry` in one assignment."""

    __slots__ = ("entry",)

    def __init__(self, entry: CacheEntry) -> None:
        self.entry = entry


class TokenCache:
    """Tokens of one credential by canonical key, with an alias index by call arguments."""

    def __init__(self) -> None:
        self._slots: dict[CacheKey, Slot] = {}
        self._aliases: dict[CallKey, Slot] = {}
        #: The hot path's lookup: the slot for a call's raw arguments (a C-level dict get). Frontends
        #: call it, then compare the clock with `slot.entry.serve_until`, as `serve` does.
        self.slot_of = self._aliases.get

    def __len__(self) -> int:
        return len(self._slots)

    def serve(self, call: CallKey, now: float) -> CacheEntry | None:
        """The entry for these call arguments if it can be served without any decision, else None."""
        try:
            slot = self._aliases.get(call)
        except TypeError:  # unhashable arguments (a list for a scope): the slow path says what is wrong
            return None
        if slot is not None:
            entry = slot.entry
            if now < entry.serve_until:
                return entry
        return None

    def plan(self, key: CacheKey, now: float, claims: str | None) -> Plan:
        """Serve the cached token or fetch a new one, per the table in §7.2."""
        slot = self._slots.get(key)
        entry = slot.entry if slot is not None else None
        if claims or entry is None or now >= entry.info.expires_on:
            return Fetch(None)
        if now < entry.serve_until or now - entry.last_attempt < RETRY_AFTER_FAILURE:
            return Serve(entry)
        return Fetch(entry)

    def remember(self, call: CallKey, key: CacheKey) -> None:
        """Let `serve` find `key`'s slot by these call arguments."""
        slot = self._slots.get(key)
        if slot is not None:
            self._aliases[call] = slot

    def store(self, key: CacheKey, info: AccessTokenInfo, now: float) -> CacheEntry:
        limit = info.expires_on - EXPIRY_MARGIN
        serve_until = min(limit, info.refresh_on) if info.refresh_on is not None else limit
        entry = CacheEntry(info, AccessToken(info.token, info.expires_on), serve_until, now)
        slot = self._slots.get(key)
        if slot is None:
            self._slots[key] = Slot(entry)
        else:
            slot.entry = entry
        return entry

    def note_failure(self, key: CacheKey, now: float) -> None:
        """A refresh failed: keep serving the old token, and wait 30 s before the next try."""
        slot = self._slots.get(key)
        if slot is not None:
            slot.entry = slot.entry._replace(last_attempt=now)
