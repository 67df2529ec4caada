"""The host as a core credential's constructor takes it when given none: the process environment
(`env=`) and the operating system's random bytes (`entropy=`).

Constructors live in modules that hold flows too, and flows' modules never import `blocking` (the
one module that touches the OS, STYLE.md): this module imports it at the first call, once.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["host_entropy", "host_environ"]


class _Host(NamedTuple):
    environ: Mapping[str, str]  # live: os.environ is changed in place, never replaced
    random_bytes: Callable[[int], bytes]


@functools.cache
def _host() -> _Host:
    from . import blocking

    return _Host(blocking.environ(), blocking.random_bytes)


def host_environ() -> Mapping[str, str]:
    """The process environment (`blocking.environ`)."""
    return _host().environ


def host_entropy() -> Callable[[int], bytes]:
    """The default entropy source: the OS's random bytes (`blocking.random_bytes`)."""
    return _host().random_bytes
