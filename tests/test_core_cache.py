"""TokenCache: the plan table of PROTOCOL.md §7.2, storing, the hot path, failure memory."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from azid_core.cache import EXPIRY_MARGIN, RETRY_AFTER_FAILURE, CacheEntry, Fetch, Serve, TokenCache
from azid_core.tokens import AccessToken, AccessTokenInfo

if TYPE_CHECKING:
    from azid_core.cache import CacheKey

T0 = 1_700_000_000.0
KEY: CacheKey = (("https://vault.azure.net/.default",), "tenant-a", False, "secret:https://login:client")
OTHER: CacheKey = (("https://vault.azure.net/.default",), "tenant-b", False, "secret:https://login:client")
CALL = (("https://vault.azure.net/.default",), None, False)


def info(lifetime: int = 3600, refresh_in: int | None = None, token: str = "tok") -> AccessTokenInfo:
    refresh_on = int(T0) + refresh_in if refresh_in is not None else None
    return AccessTokenInfo(token, int(T0) + lifetime, refresh_on=refresh_on)


def cache_with(token: AccessTokenInfo, stored_at: float = T0) -> tuple[TokenCache, CacheEntry]:
    cache = TokenCache()
    entry = cache.store(KEY, token, stored_at)
    return cache, entry


def test_constants() -> None:
    assert (EXPIRY_MARGIN, RETRY_AFTER_FAILURE) == (300, 30)


def test_store_builds_the_entry() -> None:
    token = info(3600, refresh_in=1800)
    cache, entry = cache_with(token)
    assert entry == CacheEntry(token, AccessToken("tok", int(T0) + 3600), int(T0) + 1800, T0)
    assert entry.info is token
    assert len(cache) == 1
    # Without refresh_on the limit is expiry - 300; with one, the earlier of the two.
    assert cache_with(info(3600))[1].serve_until == int(T0) + 3300
    assert cache_with(info(3600, refresh_in=3400))[1].serve_until == int(T0) + 3300


# -- the plan table, row by row --


def test_row_none() -> None:
    assert TokenCache().plan(KEY, T0, None) == Fetch(None)


@pytest.mark.parametrize("offset", [3600, 3601, 10_000])
def test_row_expired(offset: float) -> None:
    cache, _ = cache_with(info(3600))
    assert cache.plan(KEY, T0 + offset, None) == Fetch(None)


@pytest.mark.parametrize("offset", [0, 1, 1799.9])
def test_row_valid_before_refresh_on_and_margin(offset: float) -> None:
    cache, entry = cache_with(info(3600, refresh_in=1800))
    # last_attempt is recent at offset 0; the row holds on its own further on.
    assert cache.plan(KEY, T0 + offset, None) == Serve(entry)
    assert cache.plan(KEY, T0 + offset, "") == Serve(entry)


def test_row_valid_without_refresh_on() -> None:
    cache, entry = cache_with(info(3600))
    assert cache.plan(KEY, T0 + 3299, None) == Serve(entry)


@pytest.mark.parametrize("offset", [1800, 1801, 3000])
def test_row_past_refresh_on(offset: float) -> None:
    cache, entry = cache_with(info(3600, refresh_in=1800))
    assert cache.plan(KEY, T0 + offset, None) == Fetch(entry)


@pytest.mark.parametrize("offset", [3300, 3301, 3599])
def test_row_within_300_s_of_expiry(offset: float) -> None:
    cache, entry = cache_with(info(3600))
    assert cache.plan(KEY, T0 + offset, None) == Fetch(entry)
    # The margin applies even when refresh_on is later still (a bad refresh_in is ignored upstream,
    # but the cache does not rely on that).
    cache, entry = cache_with(AccessTokenInfo("tok", int(T0) + 3600, refresh_on=int(T0) + 3550))
    assert cache.plan(KEY, T0 + offset, None) == Fetch(entry)


def test_row_recent_attempt_serves_past_a_limit() -> None:
    cache, entry = cache_with(info(3600, refresh_in=1800))
    cache.note_failure(KEY, T0 + 2000)
    noted = cache.plan(KEY, T0 + 2000, None)
    assert isinstance(noted, Serve)
    assert noted.entry.last_attempt == T0 + 2000
    assert noted.entry.info is entry.info
    assert isinstance(cache.plan(KEY, T0 + 2029.9, None), Serve)
    refetch = cache.plan(KEY, T0 + 2030, None)
    assert isinstance(refetch, Fetch)
    assert refetch.fallback is not None
    assert refetch.fallback.last_attempt == T0 + 2000


def test_row_recent_store_serves_a_short_lived_token() -> None:
    # A token with under 300 s to live is past a limit at once; the store counts as an attempt.
    cache, entry = cache_with(info(200))
    assert cache.plan(KEY, T0 + 29, None) == Serve(entry)
    assert cache.plan(KEY, T0 + 30, None) == Fetch(entry)
    assert cache.plan(KEY, T0 + 200, None) == Fetch(None)


def test_recent_attempt_never_serves_an_expired_token() -> None:
    cache, _ = cache_with(info(3600))
    cache.note_failure(KEY, T0 + 3590)
    assert cache.plan(KEY, T0 + 3600, None) == Fetch(None)


@pytest.mark.parametrize("offset", [0, 1000, 2000, 3500])
def test_row_claims_always_fetch_without_fallback(offset: float) -> None:
    cache, _ = cache_with(info(3600, refresh_in=1800))
    assert cache.plan(KEY, T0 + offset, '{"access_token":{}}') == Fetch(None)


def test_keys_are_separate() -> None:
    cache, entry = cache_with(info(3600))
    assert cache.plan(OTHER, T0, None) == Fetch(None)
    other = cache.store(OTHER, info(3600, token="other"), T0)
    assert len(cache) == 2
    assert cache.plan(KEY, T0, None) == Serve(entry)
    assert cache.plan(OTHER, T0, None) == Serve(other)


# -- store replaces, remember/serve (the hot path), note_failure --


def test_store_replaces_in_the_same_slot() -> None:
    cache, _ = cache_with(info(3600, token="old"))
    cache.remember(CALL, KEY)
    newer = cache.store(KEY, info(7200, token="new"), T0 + 100)
    assert len(cache) == 1
    assert newer.last_attempt == T0 + 100
    assert cache.serve(CALL, T0 + 200) is newer
    assert cache.plan(KEY, T0 + 200, None) == Serve(newer)


def test_serve_needs_remember() -> None:
    cache, entry = cache_with(info(3600))
    assert cache.serve(CALL, T0) is None
    cache.remember(CALL, KEY)
    assert cache.serve(CALL, T0) is entry
    assert cache.serve(CALL, T0 + 3299.9) is entry
    # Past serve_until the hot path steps aside and the caller plans.
    assert cache.serve(CALL, T0 + 3300) is None
    assert cache.serve((CALL[0], "tenant-a", False), T0) is None
    assert cache.serve((CALL[0], None, True), T0) is None


def test_serve_respects_refresh_on() -> None:
    cache, entry = cache_with(info(3600, refresh_in=600))
    cache.remember(CALL, KEY)
    assert cache.serve(CALL, T0 + 599) is entry
    assert cache.serve(CALL, T0 + 600) is None


def test_remember_an_unknown_key_does_nothing() -> None:
    cache = TokenCache()
    cache.remember(CALL, KEY)
    assert cache.serve(CALL, T0) is None
    cache.store(KEY, info(3600), T0)
    # Remembering happens after a store, never before.
    assert cache.serve(CALL, T0) is None


def test_many_call_keys_share_one_slot() -> None:
    cache, _ = cache_with(info(3600))
    aliases = [(("a", "b"), None, False), (("b", "a"), None, False), (("a", "b"), "tenant-a", False)]
    for alias in aliases:
        cache.remember(alias, KEY)
    newer = cache.store(KEY, info(3600, token="newer"), T0 + 5)
    assert all(cache.serve(alias, T0 + 6) is newer for alias in aliases)


def test_note_failure() -> None:
    cache, entry = cache_with(info(3600, refresh_in=1800))
    cache.remember(CALL, KEY)
    cache.note_failure(KEY, T0 + 1900)
    current = cache.plan(KEY, T0 + 1900, None)
    assert isinstance(current, Serve)
    assert current.entry == entry._replace(last_attempt=T0 + 1900)
    # The hot path still goes by serve_until only.
    assert cache.serve(CALL, T0 + 1900) is None
    cache.note_failure(OTHER, T0)  # unknown key: nothing to note
    assert len(cache) == 1
    assert cache.plan(OTHER, T0, None) == Fetch(None)
