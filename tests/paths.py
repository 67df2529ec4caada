"""The ways to drive azid, behind one synchronous test interface.

requests and httpx (sync) are called directly; httpx async (on asyncio and on trio, with a client of
its own and with an `httpx.AsyncClient` handed in) and azid_trio run in an anyio blocking portal, an
event loop in a helper thread, so one scenario body drives every path. Each credential records the
sleeps it is asked for instead of sleeping: sleep is an effect, and tests never wait on a real clock.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import httpx

import azid_httpx
import azid_requests
import azid_trio

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from azid_core.acquire import TokenSource
    from azid_core.tokens import AccessToken, AccessTokenInfo


class SleeplessRequests(azid_requests.Credential):
    slept: list[float]

    def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


class SleeplessHttpx(azid_httpx.Credential):
    slept: list[float]

    def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


class SleeplessAsyncHttpx(azid_httpx.AsyncCredential):
    slept: list[float]

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await anyio.lowlevel.checkpoint()


class SleeplessAsyncHttpxClient(SleeplessAsyncHttpx):
    """The async credential handed an `httpx.AsyncClient`: httpx's own async stack carries the bytes."""

    def __init__(self, core: TokenSource, *, clock: Callable[[], float] | None = None) -> None:
        self._given = httpx.AsyncClient()
        super().__init__(core, self._given, clock=clock)

    async def close(self) -> None:
        await super().close()
        assert not self._given.is_closed  # the credential leaves a client it was given open
        await self._given.aclose()


class SleeplessTrio(azid_trio.Credential):
    slept: list[float]

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await anyio.lowlevel.checkpoint()


class Path:
    """One way to drive azid; `call` and `many` hide whether it is sync or async."""

    is_async = False

    def __init__(self, name: str, factory: Callable[..., Any]) -> None:
        self.name = name
        self._factory = factory

    def __repr__(self) -> str:
        return self.name

    def credential(self, core: TokenSource, clock: Callable[[], float] | None = None) -> Any:
        cred = self._factory(core, clock=clock)
        cred.slept = []
        return cred

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    def get_token(self, cred: Any, *scopes: str, **kwargs: Any) -> AccessToken:
        result: AccessToken = self.call(cred.get_token, *scopes, **kwargs)
        return result

    def get_token_info(
        self, cred: Any, *scopes: str, options: dict[str, Any] | None = None
    ) -> AccessTokenInfo:
        result: AccessTokenInfo = self.call(cred.get_token_info, *scopes, options=options)
        return result

    def many(self, cred: Any, calls: Sequence[tuple[str, ...]]) -> list[AccessToken | BaseException]:
        """Start every `get_token(*scopes)` at once; their results (or errors) in order."""
        results: list[AccessToken | BaseException] = [RuntimeError("not run")] * len(calls)
        barrier = threading.Barrier(len(calls))

        def worker(index: int) -> None:
            barrier.wait()
            try:
                results[index] = cred.get_token(*calls[index])
            except BaseException as exc:
                results[index] = exc

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        return results

    def close(self, cred: Any) -> None:
        self.call(cred.close)

    def start(self) -> None:
        """Set up whatever the path needs for one test."""

    def stop(self) -> None:
        """Tear down what `start` set up."""


class AsyncPath(Path):
    is_async = True

    def __init__(self, name: str, factory: Callable[..., Any], backend: str) -> None:
        super().__init__(name, factory)
        self._backend = backend
        self._portal_cm: Any = None
        self._portal: anyio.from_thread.BlockingPortal | None = None

    def start(self) -> None:
        self._portal_cm = anyio.from_thread.start_blocking_portal(self._backend)
        self._portal = self._portal_cm.__enter__()

    def stop(self) -> None:
        self._portal_cm.__exit__(None, None, None)

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        assert self._portal is not None

        async def invoke() -> Any:
            result = function(*args, **kwargs)
            return await result if hasattr(result, "__await__") else result

        return self._portal.call(invoke)

    def credential(self, core: TokenSource, clock: Callable[[], float] | None = None) -> Any:
        return self.call(super().credential, core, clock)

    def many(self, cred: Any, calls: Sequence[tuple[str, ...]]) -> list[AccessToken | BaseException]:
        results: list[AccessToken | BaseException] = [RuntimeError("not run")] * len(calls)

        async def one(index: int) -> None:
            try:
                results[index] = await cred.get_token(*calls[index])
            except Exception as exc:
                results[index] = exc

        async def all_at_once() -> None:
            async with anyio.create_task_group() as group:
                for index in range(len(calls)):
                    group.start_soon(one, index)

        assert self._portal is not None
        self._portal.call(all_at_once)
        return results


def all_paths() -> Iterator[Path]:
    yield Path("requests", SleeplessRequests)
    yield Path("httpx", SleeplessHttpx)
    yield AsyncPath("httpx-asyncio", SleeplessAsyncHttpx, "asyncio")
    yield AsyncPath("httpx-trio", SleeplessAsyncHttpx, "trio")
    yield AsyncPath("httpx-client-asyncio", SleeplessAsyncHttpxClient, "asyncio")
    yield AsyncPath("httpx-client-trio", SleeplessAsyncHttpxClient, "trio")
    yield AsyncPath("azid_trio", SleeplessTrio, "trio")
