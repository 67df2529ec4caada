"""One suite, five paths: every scenario runs through requests, httpx sync, httpx async on asyncio,
httpx async on trio, and azid_trio, against the Entra emulator on a loopback HTTPS server."""

from __future__ import annotations

import json
import logging
import pickle
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import pytest

from azid_core import (
    AccessToken,
    AccessTokenInfo,
    AuthError,
    ClientSecretCredential,
    ConfigError,
    CredentialUnavailableError,
    ProtocolError,
    TransportError,
)
from azid_core.testing import EntraEmulator
from tests.conftest import CLIENT, SECRET, TENANT, FakeClock, RawServer, closed_port
from tests.loopback import LoopbackServer

if TYPE_CHECKING:
    from azid_core.effects import HttpRequest
    from tests.paths import Path

VAULT = "https://vault.azure.net/.default"
STORAGE = "https://storage.azure.com/.default"


def core_for(url: str, **options: Any) -> ClientSecretCredential:
    return ClientSecretCredential(TENANT, CLIENT, SECRET, authority=url, env={}, **options)


def form(request: HttpRequest) -> dict[str, list[str]]:
    return parse_qs(request.body.decode())


def test_first_call_fetches_then_the_cache_serves(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    cred = path.credential(core_for(server.url), clock)
    token = path.get_token(cred, VAULT)
    assert isinstance(token, AccessToken)
    claims = emulator.decode(token.token)
    assert (claims["aud"], claims["tid"], claims["appid"]) == ("https://vault.azure.net", TENANT, CLIENT)
    assert token.expires_on == int(clock.now) + 3600
    assert path.get_token(cred, VAULT) == token
    info = path.get_token_info(cred, VAULT)
    assert (info.token, info.expires_on, info.token_type) == (token.token, token.expires_on, "Bearer")
    assert emulator.token_requests == 1
    sent = emulator.requests[0]
    assert sent.url == f"{server.url}/{TENANT}/oauth2/v2.0/token"
    assert form(sent) == {
        "client_id": [CLIENT],
        "grant_type": ["client_credentials"],
        "client_info": ["1"],
        "client_secret": [SECRET],
        "scope": [VAULT],
    }
    path.close(cred)


def test_only_host_content_length_and_connection_are_added(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    cred = path.credential(core_for(server.url), clock)
    path.get_token(cred, VAULT)
    names = {name.lower() for name, _ in emulator.requests[0].headers}
    ours = {"user-agent", "x-ms-client-request-id", "client-request-id", "accept", "content-type"}
    assert ours <= names
    assert names - ours <= {"host", "content-length", "connection"}
    headers = {name.lower(): value for name, value in emulator.requests[0].headers}
    assert headers["user-agent"].startswith("azid/")
    assert headers["x-ms-client-request-id"] == headers["client-request-id"]
    path.close(cred)


def test_get_token_info_carries_refresh_on_and_refreshes_then(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    emulator.refresh_in = 600
    cred = path.credential(core_for(server.url), clock)
    first = path.get_token_info(cred, VAULT)
    assert isinstance(first, AccessTokenInfo)
    assert first.refresh_on == int(clock.now) + 600
    clock.advance(599)
    assert path.get_token_info(cred, VAULT).token == first.token
    assert emulator.token_requests == 1
    clock.advance(1)
    second = path.get_token_info(cred, VAULT)
    assert second.token != first.token
    assert emulator.token_requests == 2
    path.close(cred)


def test_five_minutes_before_expiry_a_new_token_is_fetched(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    cred = path.credential(core_for(server.url), clock)
    first = path.get_token(cred, VAULT)
    clock.advance(3600 - 301)
    assert path.get_token(cred, VAULT) == first
    clock.advance(1)
    assert path.get_token(cred, VAULT) != first
    assert emulator.token_requests == 2
    path.close(cred)


def test_a_failed_refresh_serves_the_still_valid_token(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    emulator.refresh_in = 600
    cred = path.credential(core_for(server.url), clock)
    first = path.get_token(cred, VAULT)
    clock.advance(700)
    emulator.fail_next(400, {"error": "temporarily_unavailable", "error_description": "AADSTS50196: loop"})
    assert path.get_token(cred, VAULT) == first
    assert emulator.token_requests == 2
    clock.advance(29)  # within 30 s of the failed attempt: no new attempt
    assert path.get_token(cred, VAULT) == first
    assert emulator.token_requests == 2
    clock.advance(1)
    assert path.get_token(cred, VAULT) != first
    assert emulator.token_requests == 3
    path.close(cred)


def test_claims_force_a_request(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    cred = path.credential(core_for(server.url), clock)
    first = path.get_token(cred, VAULT)
    claims = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'
    second = path.get_token(cred, VAULT, claims=claims)
    assert second != first
    assert form(emulator.requests[-1])["claims"] == [claims]
    assert emulator.token_requests == 2
    path.close(cred)


def test_tenant_and_cae_are_separate_cache_entries(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    emulator.add_app("tenant-two", CLIENT, SECRET)
    cred = path.credential(core_for(server.url, additionally_allowed_tenants=["*"]), clock)
    plain = path.get_token(cred, VAULT)
    other_tenant = path.get_token(cred, VAULT, tenant_id="tenant-two")
    cae = path.get_token(cred, VAULT, enable_cae=True)
    assert len({plain.token, other_tenant.token, cae.token}) == 3
    assert emulator.decode(other_tenant.token)["tid"] == "tenant-two"
    assert emulator.requests[1].url.endswith("/tenant-two/oauth2/v2.0/token")
    assert json.loads(form(emulator.requests[2])["claims"][0]) == {
        "access_token": {"xms_cc": {"values": ["CP1"]}}
    }
    assert path.get_token(cred, VAULT, tenant_id="tenant-two") == other_tenant
    assert path.get_token(cred, VAULT, enable_cae=True) == cae
    assert path.get_token(cred, VAULT) == plain
    assert emulator.token_requests == 3
    path.close(cred)


def test_a_tenant_not_allowed_is_a_config_error_before_any_request(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    cred = path.credential(core_for(server.url), clock)
    with pytest.raises(ConfigError, match="additionally_allowed_tenants"):
        path.get_token(cred, VAULT, tenant_id="tenant-two")
    assert emulator.requests == []
    path.close(cred)


def test_wrong_secret_is_an_auth_error_with_the_aadsts_code(
    path: Path,
    server: LoopbackServer,
    emulator: EntraEmulator,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "Wr0ng-s3cret-value"
    core = ClientSecretCredential(TENANT, CLIENT, wrong, authority=server.url, env={})
    cred = path.credential(core, clock)
    with caplog.at_level(logging.DEBUG, logger="azid"), pytest.raises(AuthError) as caught:
        path.get_token(cred, VAULT)
    error = caught.value
    assert (error.status, error.error, error.error_codes) == (401, "invalid_client", (7000215,))
    assert "AADSTS7000215" in str(error)
    assert error.trace_id
    assert error.correlation_id
    for text in (str(error), repr(error), repr(cred), repr(core), caplog.text, repr(error.__dict__)):
        assert wrong not in text
    assert emulator.token_requests == 1  # 401 is not retried
    path.close(cred)


def test_the_secret_never_reaches_logs_or_reprs(
    path: Path,
    server: LoopbackServer,
    emulator: EntraEmulator,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    core = core_for(server.url)
    cred = path.credential(core, clock)
    with caplog.at_level(logging.DEBUG, logger="azid"):
        path.get_token(cred, VAULT)
        path.get_token(cred, VAULT)
    assert caplog.records  # the steps were logged ...
    for text in (caplog.text, repr(cred), repr(core), repr(emulator.requests[0])):
        assert SECRET not in text  # ... without the secret
    path.close(cred)


def test_a_refused_connection_is_retried_then_unavailable(path: Path, clock: FakeClock) -> None:
    cred = path.credential(core_for(f"http://127.0.0.1:{closed_port()}"), clock)
    with pytest.raises(CredentialUnavailableError, match=r"could not be reached \(connect\)") as caught:
        path.get_token(cred, VAULT)
    assert isinstance(caught.value.__cause__, TransportError)
    assert caught.value.__cause__.kind == "connect"
    assert cred.slept == [0.0, 1.6, 3.2]  # policy E retries requests that were never sent
    path.close(cred)


def test_a_connection_reset_is_named(path: Path, clock: FakeClock) -> None:
    with RawServer("reset") as raw:
        cred = path.credential(core_for(raw.url), clock)
        with pytest.raises(CredentialUnavailableError, match=r"\(closed\)"):
            path.get_token(cred, VAULT)
        path.close(cred)
    assert raw.requests == 1  # a request that may have been processed is not repeated
    assert cred.slept == []


def test_a_silent_server_times_out(path: Path, clock: FakeClock) -> None:
    with RawServer("hang") as raw:
        cred = path.credential(core_for(raw.url, request_timeout=0.3), clock)
        started = time.monotonic()
        with pytest.raises(CredentialUnavailableError, match=r"\(timeout\)"):
            path.get_token(cred, VAULT)
        assert time.monotonic() - started < 3
        path.close(cred)


@pytest.mark.parametrize(
    ("status", "body", "error_type", "named"),
    [
        (200, "<html><body>Sign in</body></html>", ProtocolError, "body"),
        (200, b"\xff\xfe not json", ProtocolError, "body"),
        (200, {"token_type": "Bearer", "expires_in": 3600}, ProtocolError, "access_token"),
        (200, {"access_token": "abc", "expires_in": "soon"}, ProtocolError, "expires_in"),
        (502, "<html>Bad Gateway</html>", AuthError, "HTTP 502"),
        (302, "", AuthError, "HTTP 302"),
    ],
)
def test_unreadable_or_unexpected_replies_are_typed_errors(
    path: Path,
    server: LoopbackServer,
    emulator: EntraEmulator,
    clock: FakeClock,
    status: int,
    body: str | bytes | dict[str, Any],
    error_type: type[Exception],
    named: str,
) -> None:
    emulator.fail_next(
        status, body, (("Location", "https://127.0.0.1:1/elsewhere"),) if status == 302 else ()
    )
    cred = path.credential(core_for(server.url), clock)
    with pytest.raises(error_type, match=named) as caught:
        path.get_token(cred, VAULT)
    if isinstance(caught.value, ProtocolError):
        assert caught.value.field == named
    if status == 502:
        assert isinstance(caught.value, AuthError)
        assert caught.value.body_excerpt == "<html>Bad Gateway</html>"
    assert emulator.token_requests == 1  # nothing retried, no redirect followed
    path.close(cred)


def test_a_body_over_the_limit_is_a_protocol_error(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    emulator.fail_next(200, b"x" * ((1 << 20) + 1))
    cred = path.credential(core_for(server.url), clock)
    with pytest.raises(ProtocolError, match="over 1048576 bytes"):
        path.get_token(cred, VAULT)
    path.close(cred)


def test_a_retryable_status_is_retried_with_policy_e(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    emulator.fail_next(503, "busy", (("Retry-After", "2"),))
    emulator.fail_next(429, "slow down")
    cred = path.credential(core_for(server.url), clock)
    token = path.get_token(cred, VAULT)
    assert emulator.decode(token.token)["tid"] == TENANT
    assert cred.slept == [2.0, 1.6]  # the hint replaces the first delay
    ids = {dict(r.headers).get("x-ms-client-request-id") for r in emulator.requests}
    assert len(ids) == 1  # one logical request, one id across retries
    path.close(cred)


def test_concurrent_callers_share_one_request(path: Path, emulator: EntraEmulator, clock: FakeClock) -> None:
    """200 tasks (async) or 32 threads (sync) on a cold credential: one token request."""
    with LoopbackServer(emulator, tls=False, delay=0.2) as slow:
        cred = path.credential(core_for(slow.url), clock)
        callers = 200 if path.is_async else 32
        results = path.many(cred, [(VAULT,)] * callers)
        path.close(cred)
    assert all(isinstance(r, AccessToken) for r in results), results[:3]
    assert len({r.token for r in results if isinstance(r, AccessToken)}) == 1
    assert emulator.token_requests == 1


def test_waiters_share_the_leaders_failure(path: Path, emulator: EntraEmulator, clock: FakeClock) -> None:
    with LoopbackServer(emulator, tls=False, delay=0.2) as slow:
        core = ClientSecretCredential(TENANT, CLIENT, "not-the-secret", authority=slow.url, env={})
        cred = path.credential(core, clock)
        results = path.many(cred, [(VAULT,)] * (50 if path.is_async else 16))
        path.close(cred)
    assert all(isinstance(r, AuthError) and "AADSTS7000215" in str(r) for r in results)
    assert emulator.token_requests == 1


def test_different_scopes_proceed_in_parallel(path: Path, emulator: EntraEmulator, clock: FakeClock) -> None:
    scopes = [(f"https://resource{i}.example/.default",) for i in range(50)]
    with LoopbackServer(emulator, tls=False, delay=0.2) as slow:
        cred = path.credential(core_for(slow.url), clock)
        started = time.monotonic()
        results = path.many(cred, scopes)
        elapsed = time.monotonic() - started
        path.close(cred)
    assert all(isinstance(r, AccessToken) for r in results), results[:3]
    assert emulator.token_requests == 50
    assert elapsed < 50 * 0.2 / 4, f"50 scopes took {elapsed:.2f} s: requests were serialized"


def test_the_core_credential_pickles_without_its_cache(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    core = core_for(server.url)
    assert emulator.requests == []  # constructing did no I/O
    cred = path.credential(core, clock)
    path.get_token(cred, VAULT)
    clone = pickle.loads(pickle.dumps(core))
    assert len(core.token_cache) == 1
    assert len(clone.token_cache) == 0
    second = path.credential(clone, clock)
    path.get_token(second, VAULT)
    assert emulator.token_requests == 2  # the clone fetched its own token: nothing was carried over
    path.close(cred)
    path.close(second)
