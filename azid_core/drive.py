"""The two drive loops: run a flow to completion, handing each effect to an adapter's `send`.

This is the only logic that exists twice (sync and async). The loop owns one rule: a
`TransportError` raised by `send` is thrown into the flow, which decides what the failure means.
Any other exception (a cancellation, a bug) ends the flow with `close()`, so its cleanup (for
example handing a single-flight lead to the next waiter) always runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import TransportError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .effects import Effect, Flow, Reply, T

__all__ = ["arun", "run"]


def run(flow: Flow[T], send: Callable[[Effect], Reply]) -> T:
    """Drive `flow`, answering each effect with `send(effect)`; return the flow's result."""
    reply: Reply = None
    error: TransportError | None = None
    try:
        while True:
            try:
                effect = flow.throw(error) if error is not None else flow.send(reply)
            except StopIteration as stop:
                result: T = stop.value
                return result
            reply, error = None, None
            try:
                reply = send(effect)
            except TransportError as exc:
                error = exc
    finally:
        flow.close()


async def arun(flow: Flow[T], send: Callable[[Effect], Awaitable[Reply]]) -> T:
    """Drive `flow`, answering each effect with `await send(effect)`; return the flow's result."""
    reply: Reply = None
    error: TransportError | None = None
    try:
        while True:
            try:
                effect = flow.throw(error) if error is not None else flow.send(reply)
            except StopIteration as stop:
                result: T = stop.value
                return result
            reply, error = None, None
            try:
                reply = await send(effect)
            except TransportError as exc:
                error = exc
    finally:
        flow.close()
