"""The get_token surface the adapters inherit, through the real adapters with their real sleeps
and events: options of get_token_info, effects an adapter cannot perform, and the zero sleep that
reads the clock after a failed refresh (which must not wait)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
import httpx
import pytest
import trio

import azid_httpx
import azid_trio
from azid_core import AzidError, ClientSecretCredential, HttpRequest
from azid_core.cache import TokenCache
from azid_core.testing import EntraEmulator
from tests.conftest import CLIENT, SECRET, TENANT, FakeClock
from tests.loopback import LoopbackServer

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from azid_core.acquire import TokenCall
    from azid_core.cache import CacheKey
    from azid_core.tokens import AccessTokenInfo

SCOPE = "https://vault.azure.net/.default"
CLAIMS = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'


def _mock_client(emulator: EntraEmulator) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        reply = emulator(
            HttpRequest(request.method, str(request.url), tuple(request.headers.items()), request.read())
        )
        return httpx.Response(reply.status, headers=list(reply.headers), content=reply.body)

    return httpx.MockTransport(handle)


def _setup() -> tuple[FakeClock, EntraEmulator, ClientSecretCredential]:
    clock = FakeClock()
    emulator = EntraEmulator(clock=clock, refresh_in=600)
    emulator.add_app(TENANT, CLIENT, SECRET)
    return (
        clock,
        emulator,
        ClientSecretCredential(TENANT, CLIENT, SECRET, authority="https://login.test", env={}),
    )


class _Telepathy(NamedTuple):
    """An effect no adapter performs."""

    question: str


class _AsksTheImpossible:
    """A core credential whose fetch asks for an effect that no adapter can perform."""

    def __init__(self) -> None:
        self.token_cache = TokenCache()

    def cache_key(self, call: TokenCall) -> CacheKey:
        return (call.scopes, "", False, "runs-commands")

    def fetch_flow(self, call: TokenCall, key: CacheKey, now: float) -> Generator[Any, Any, AccessTokenInfo]:
        yield _Telepathy("what is the token?")
        raise AssertionError("not reached")


def test_sync_get_token_info_options_and_unsupported_effects() -> None:
    clock, emulator, core = _setup()
    with azid_httpx.Credential(core, httpx.Client(transport=_mock_client(emulator)), clock=clock) as cred:
        first = cred.get_token_info(SCOPE)
        assert cred.get_token_info(SCOPE, options={"tenant_id": None}) == first
        with_claims = cred.get_token_info(SCOPE, options={"claims": CLAIMS})
        assert with_claims.token != first.token
        assert emulator.token_requests == 2
    with pytest.raises(AzidError, match="cannot perform _Telepathy"):
        azid_httpx.Credential(_AsksTheImpossible(), httpx.Client()).get_token(SCOPE)


def test_sync_fallback_reads_the_clock_with_a_real_zero_sleep() -> None:
    clock, emulator, core = _setup()
    with azid_httpx.Credential(core, httpx.Client(transport=_mock_client(emulator)), clock=clock) as cred:
        first = cred.get_token(SCOPE)
        clock.advance(700)
        emulator.fail_next(400, {"error": "invalid_request"})
        started = time.monotonic()
        assert cred.get_token(SCOPE) == first
        assert time.monotonic() - started < 1
        assert emulator.token_requests == 2


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_async_get_token_info_options_fallback_and_unsupported_effects(backend: str) -> None:
    clock, emulator, core = _setup()

    async def scenario() -> None:
        client = httpx.AsyncClient(transport=_mock_client(emulator))
        async with azid_httpx.AsyncCredential(core, client, clock=clock) as cred:
            first = await cred.get_token_info(SCOPE)
            assert await cred.get_token_info(SCOPE, options={"enable_cae": False}) == first
            claimed = await cred.get_token_info(SCOPE, options={"claims": CLAIMS})
            assert claimed.token != first.token  # fetched, and stored in place of the first token
            clock.advance(700)
            emulator.fail_next(400, {"error": "invalid_request"})
            served = await cred.get_token(SCOPE)  # the refresh fails: the still-valid token is served
            assert served.token == claimed.token
        await client.aclose()
        with pytest.raises(AzidError, match="cannot perform _Telepathy"):
            await azid_httpx.AsyncCredential(_AsksTheImpossible(), httpx.AsyncClient()).get_token(SCOPE)

    anyio.run(scenario, backend=backend)
    assert emulator.token_requests == 3


def test_azid_trio_sleeps_and_waits_on_trio() -> None:
    clock, emulator, _ = _setup()
    with LoopbackServer(emulator, tls=False) as server:
        core = ClientSecretCredential(TENANT, CLIENT, SECRET, authority=server.url, env={})

        async def scenario() -> None:
            async with azid_trio.Credential(core, clock=clock) as cred:
                first = await cred.get_token(SCOPE)
                clock.advance(700)
                emulator.fail_next(400, {"error": "invalid_request"})
                with trio.fail_after(5):
                    assert await cred.get_token(SCOPE) == first

        trio.run(scenario)
    assert emulator.token_requests == 2


def test_abstract_bases_need_an_adapter() -> None:
    from azid_core.frontend import AsyncCredentialBase, CredentialBase

    bases: list[Callable[..., Any]] = [CredentialBase, AsyncCredentialBase]
    for base in bases:
        with pytest.raises(TypeError, match="abstract"):
            base(_AsksTheImpossible())


def test_arguments_of_the_wrong_type_are_config_errors() -> None:
    from azid_core import ConfigError

    _, emulator, core = _setup()
    with azid_httpx.Credential(core, httpx.Client(transport=_mock_client(emulator))) as cred:
        with pytest.raises(ConfigError, match="scopes is invalid"):
            cred.get_token([SCOPE])  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="claims is invalid: a JSON string is required, not dict"):
            cred.get_token(SCOPE, claims={"access_token": {}})  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="tenant_id is invalid"):
            cred.get_token(SCOPE, tenant_id=["other"])  # type: ignore[arg-type]
    assert emulator.requests == []


def test_unhashable_arguments_take_the_slow_path_which_names_them() -> None:
    from azid_core import ConfigError

    _, emulator, core = _setup()
    with (
        azid_httpx.Credential(core, httpx.Client(transport=_mock_client(emulator))) as cred,
        pytest.raises(ConfigError, match="scopes is invalid"),
    ):
        cred.get_token_info([SCOPE])  # type: ignore[arg-type]

    async def scenario() -> None:
        client = httpx.AsyncClient(transport=_mock_client(emulator))
        async with azid_httpx.AsyncCredential(core, client) as acred:
            with pytest.raises(ConfigError, match="tenant_id is invalid"):
                await acred.get_token(SCOPE, tenant_id=["other"])  # type: ignore[arg-type]
        await client.aclose()

    anyio.run(scenario)
    assert emulator.requests == []
