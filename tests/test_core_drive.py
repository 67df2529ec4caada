"""The drive loops run() and arun() (STYLE.md "Two drivers")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from azid_core.drive import arun, run
from azid_core.effects import HttpRequest, HttpResponse, Sleep
from azid_core.errors import TransportError

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from azid_core.effects import Effect, Flow, Reply

REQ = HttpRequest("GET", "https://h/x")
RESP = HttpResponse(200, (), b"ok")


def complete(coro: Coroutine[Any, Any, Any]) -> Any:
    """A tiny coroutine runner: the sends below never really suspend."""
    try:
        while True:
            coro.send(None)
    except StopIteration as stop:
        return stop.value


class Recorder:
    """A flow that records what it was sent, thrown and whether it was closed."""

    def __init__(self) -> None:
        self.got: list[object] = []
        self.closed = False

    def flow(self) -> Flow[str]:
        try:
            first = yield REQ
            self.got.append(first)
            try:
                second = yield Sleep(1.0)
            except TransportError as exc:
                self.got.append(exc)
                second = yield Sleep(2.0)
            self.got.append(second)
            return "done"
        finally:
            self.closed = True


def sync_and_async(send: Callable[[Effect], Reply]) -> list[Callable[[Flow[str]], str]]:
    async def asend(effect: Effect) -> Reply:
        return send(effect)

    return [lambda flow: run(flow, send), lambda flow: complete(arun(flow, asend))]


def scripted(*replies: Reply | BaseException) -> Callable[[Effect], Reply]:
    queue = list(replies)

    def send(effect: Effect) -> Reply:
        reply = queue.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    return send


@pytest.mark.parametrize("mode", [0, 1], ids=["run", "arun"])
def test_replies_are_sent_back_and_the_result_returned(mode: int) -> None:
    seen: list[Effect] = []
    replies: list[Reply] = [RESP, 5.0]

    def send(effect: Effect) -> Reply:
        seen.append(effect)
        return replies.pop(0)

    recorder = Recorder()
    assert sync_and_async(send)[mode](recorder.flow()) == "done"
    assert seen == [REQ, Sleep(1.0)]
    assert recorder.got == [RESP, 5.0]
    assert recorder.closed


@pytest.mark.parametrize("mode", [0, 1], ids=["run", "arun"])
def test_transport_error_is_thrown_into_the_flow(mode: int) -> None:
    error = TransportError("timeout", "slow")
    recorder = Recorder()
    result = sync_and_async(scripted(RESP, error, None))[mode](recorder.flow())
    assert result == "done"
    assert recorder.got == [RESP, error, None]


@pytest.mark.parametrize("mode", [0, 1], ids=["run", "arun"])
def test_transport_error_the_flow_does_not_handle_propagates(mode: int) -> None:
    error = TransportError("connect", "refused")
    recorder = Recorder()
    with pytest.raises(TransportError) as info:
        sync_and_async(scripted(error))[mode](recorder.flow())
    assert info.value is error
    assert recorder.closed
    assert recorder.got == []


@pytest.mark.parametrize("mode", [0, 1], ids=["run", "arun"])
@pytest.mark.parametrize("error", [RuntimeError("bug"), KeyboardInterrupt(), ValueError("x")])
def test_other_exceptions_close_the_flow(mode: int, error: BaseException) -> None:
    recorder = Recorder()
    flow = recorder.flow()
    with pytest.raises(type(error)) as info:
        sync_and_async(scripted(RESP, error))[mode](flow)
    assert info.value is error
    assert recorder.closed  # its finally ran
    assert recorder.got == [RESP]  # the error was not thrown into it
    with pytest.raises(StopIteration):
        next(flow)


@pytest.mark.parametrize("mode", [0, 1], ids=["run", "arun"])
def test_a_flow_without_effects(mode: int) -> None:
    def flow() -> Flow[int]:
        return 42
        yield  # pragma: no cover - makes this a generator

    def send(effect: Effect) -> Reply:
        raise AssertionError("no effect expected")

    async def asend(effect: Effect) -> Reply:
        raise AssertionError("no effect expected")

    result = run(flow(), send) if mode == 0 else complete(arun(flow(), asend))
    assert result == 42


@pytest.mark.parametrize("mode", [0, 1], ids=["run", "arun"])
def test_errors_raised_by_the_flow_propagate(mode: int) -> None:
    def flow() -> Flow[int]:
        yield REQ
        raise LookupError("flow failed")

    with pytest.raises(LookupError, match="flow failed"):
        sync_and_async(scripted(RESP))[mode](flow())  # type: ignore[arg-type]


def test_arun_awaits_a_real_suspension() -> None:
    """arun with a send that suspends once per effect, driven by a hand-written loop."""

    class Suspend:
        def __await__(self) -> Any:
            yield "suspended"

    suspensions = 0

    async def asend(effect: Effect) -> Reply:
        await Suspend()
        return RESP if isinstance(effect, HttpRequest) else None

    recorder = Recorder()
    coro = arun(recorder.flow(), asend)
    try:
        while True:
            assert coro.send(None) == "suspended"
            suspensions += 1
    except StopIteration as stop:
        assert stop.value == "done"
    assert suspensions == 2
    assert recorder.got == [RESP, None]


def test_arun_cancelled_while_waiting_closes_the_flow() -> None:
    class Suspend:
        def __await__(self) -> Any:
            yield "suspended"

    async def asend(effect: Effect) -> Reply:
        await Suspend()
        return RESP  # pragma: no cover - never resumed

    recorder = Recorder()
    coro = arun(recorder.flow(), asend)
    assert coro.send(None) == "suspended"
    coro.close()  # what a cancelled task amounts to: GeneratorExit at the await
    assert recorder.closed
