"""`ScriptedIO`: an effect handler for core tests that answers with canned replies, in order."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..effects import Effect, Reply

__all__ = ["ScriptedIO"]


class ScriptedIO:
    """An effect handler that answers with canned replies, in order, and records what it saw.

    A reply that is an exception is raised instead (a `TransportError`, say).
    """

    def __init__(self, *replies: Reply | BaseException) -> None:
        self._replies = list(replies)
        self.seen: list[Effect] = []

    def __call__(self, effect: Effect) -> Reply:
        self.seen.append(effect)
        if not self._replies:
            raise AssertionError(f"ScriptedIO has no reply left for {effect!r}")
        reply = self._replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    @property
    def unused(self) -> int:
        return len(self._replies)
