"""The get_token surface every adapter inherits: azure-core's TokenCredential protocols.

`CredentialBase` (sync) and `AsyncCredentialBase` differ only in how they wait: the first calls,
the second awaits. Both answer a cached token with one lookup and one clock compare, and otherwise
drive `acquire_flow`; an adapter supplies only its HTTP call (and, async, its sleep, event and
`RunCommand`). Effects that need no library are carried out here: a `ReadFile` (a small local file,
read inline: a thread hop would cost more than the read), a `FunctionCall` (user code, awaited when
the async frontend gets an awaitable back) and, sync, a `RunCommand` (`blocking.run_command`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from . import blocking
from .acquire import TokenCall, acquire_flow
from .drive import arun, run
from .effects import AwaitFlight, FunctionCall, FunctionResult, HttpRequest, ReadFile, RunCommand, Sleep
from .errors import AzidError
from .flight import FlightTable
from .tokens import AccessToken

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from types import TracebackType

    from typing_extensions import Self

    from .acquire import TokenSource
    from .effects import CommandResult, Effect, HttpResponse, Reply, Waitable
    from .tokens import AccessTokenInfo

__all__ = ["AsyncCredentialBase", "CredentialBase"]


def _call(scopes: tuple[str, ...], options: Mapping[str, Any] | None) -> TokenCall:
    options = options or {}
    return TokenCall(scopes, options.get("claims"), options.get("tenant_id"), bool(options.get("enable_cae")))


def _unsupported(effect: Effect) -> AzidError:
    return AzidError(f"this adapter cannot perform {effect!r}")


class CredentialBase(ABC):
    """A sync credential over a core credential; subclasses implement `_http` and `close`."""

    def __init__(self, core: TokenSource, *, clock: Callable[[], float] | None = None) -> None:
        self._core = core
        self._clock = clock or blocking.clock
        self._flights = FlightTable(blocking.new_event)
        cache = core.token_cache
        self._serve = cache.serve
        self._slot_of = cache.slot_of

    def __repr__(self) -> str:
        return f"{type(self).__module__}.{type(self).__name__}({self._core!r})"

    @abstractmethod
    def _http(self, request: HttpRequest) -> HttpResponse:
        """Send one request with the adapter's library."""

    def _sleep(self, seconds: float) -> None:
        blocking.sleep(seconds)

    def _run(self, command: RunCommand) -> CommandResult:
        """Run a developer tool (PROTOCOL.md §0.1 "Processes"); the same for every sync adapter."""
        return blocking.run_command(command)

    def _send(self, effect: Effect) -> Reply:
        if isinstance(effect, HttpRequest):
            return self._http(effect)
        if isinstance(effect, AwaitFlight):
            effect.event.wait()  # type: ignore[attr-defined]  # a threading.Event: we made it
            return self._clock()
        if isinstance(effect, Sleep):
            self._sleep(effect.seconds)
            return self._clock()
        if isinstance(effect, ReadFile):
            return blocking.read_file(effect)
        if isinstance(effect, FunctionCall):
            try:
                return FunctionResult(effect.function())
            except Exception as exc:  # the flow decides what the failure means
                return FunctionResult(error=exc)
        if isinstance(effect, RunCommand):
            return self._run(effect)
        raise _unsupported(effect)

    def _acquire(self, call: TokenCall) -> AccessTokenInfo:
        return run(acquire_flow(self._core, call, self._flights, self._clock()), self._send)

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """azure-core's `TokenCredential.get_token`. Other keyword arguments are accepted and ignored."""
        if not claims:
            # TokenCache.serve, inlined: on this path (azure-core's) one Python call is ~10 % of the cost.
            try:
                slot = self._slot_of((scopes, tenant_id, enable_cae))
            except TypeError:  # unhashable arguments (a list for a scope): the slow path says what is wrong
                slot = None
            if slot is not None:
                entry = slot.entry
                if self._clock() < entry.serve_until:
                    return entry.access_token
        info = self._acquire(TokenCall(scopes, claims, tenant_id, enable_cae))
        return AccessToken(info.token, info.expires_on)

    def get_token_info(self, *scopes: str, options: Mapping[str, Any] | None = None) -> AccessTokenInfo:
        """azure-core's `SupportsTokenInfo.get_token_info`; options: claims, tenant_id, enable_cae."""
        call = _call(scopes, options)
        if not call.claims:
            entry = self._serve(call.call_key, self._clock())
            if entry is not None:
                return entry.info
        return self._acquire(call)

    @abstractmethod
    def close(self) -> None:
        """Release what the adapter created (a session or client passed in is left open)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncCredentialBase(ABC):
    """An async credential over a core credential; subclasses implement `_http`, `_sleep`,
    `_new_event`, `_run` and `close`, with anyio or trio (never asyncio-only APIs)."""

    def __init__(self, core: TokenSource, *, clock: Callable[[], float] | None = None) -> None:
        self._core = core
        self._clock = clock or blocking.clock
        self._flights = FlightTable(self._new_event)
        cache = core.token_cache
        self._serve = cache.serve
        self._slot_of = cache.slot_of

    def __repr__(self) -> str:
        return f"{type(self).__module__}.{type(self).__name__}({self._core!r})"

    @abstractmethod
    async def _http(self, request: HttpRequest) -> HttpResponse:
        """Send one request with the adapter's library."""

    @abstractmethod
    async def _sleep(self, seconds: float) -> None:
        """Sleep on the adapter's event loop."""

    @abstractmethod
    def _new_event(self) -> Waitable:
        """An event of the adapter's event loop, for single-flight waiters."""

    @abstractmethod
    async def _run(self, command: RunCommand) -> CommandResult:
        """Run a developer tool on the adapter's event loop, with `blocking.command_line` and
        `blocking.kill_group` (PROTOCOL.md §0.1 "Processes")."""

    async def _send(self, effect: Effect) -> Reply:
        if isinstance(effect, HttpRequest):
            return await self._http(effect)
        if isinstance(effect, AwaitFlight):
            waiting: Awaitable[object] = effect.event.wait()  # type: ignore[attr-defined]
            await waiting
            return self._clock()
        if isinstance(effect, Sleep):
            await self._sleep(effect.seconds)
            return self._clock()
        if isinstance(effect, ReadFile):
            return blocking.read_file(effect)
        if isinstance(effect, FunctionCall):
            try:
                value = effect.function()
                if hasattr(value, "__await__"):
                    value = await value
            except Exception as exc:  # the flow decides what the failure means
                return FunctionResult(error=exc)
            return FunctionResult(value)
        if isinstance(effect, RunCommand):
            return await self._run(effect)
        raise _unsupported(effect)

    async def _acquire(self, call: TokenCall) -> AccessTokenInfo:
        return await arun(acquire_flow(self._core, call, self._flights, self._clock()), self._send)

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """azure-core's `AsyncTokenCredential.get_token`. Other keyword arguments are ignored."""
        if not claims:
            # TokenCache.serve, inlined: on this path (azure-core's) one Python call is ~10 % of the cost.
            try:
                slot = self._slot_of((scopes, tenant_id, enable_cae))
            except TypeError:  # unhashable arguments (a list for a scope): the slow path says what is wrong
                slot = None
            if slot is not None:
                entry = slot.entry
                if self._clock() < entry.serve_until:
                    return entry.access_token
        info = await self._acquire(TokenCall(scopes, claims, tenant_id, enable_cae))
        return AccessToken(info.token, info.expires_on)

    async def get_token_info(self, *scopes: str, options: Mapping[str, Any] | None = None) -> AccessTokenInfo:
        """azure-core's `AsyncSupportsTokenInfo.get_token_info`."""
        call = _call(scopes, options)
        if not call.claims:
            entry = self._serve(call.call_key, self._clock())
            if entry is not None:
                return entry.info
        return await self._acquire(call)

    @abstractmethod
    async def close(self) -> None:
        """Release what the adapter created (a client passed in is left open)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
