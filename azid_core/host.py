"""The host's environment, as a core credential's constructor reads it when given no `env=`.

Constructors live in modules that hold flows too, and flows' modules never import `blocking` (the
one module that touches the OS, STYLE.md): this module imports it at the first call, not before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["host_environ"]


def host_environ() -> Mapping[str, str]:
    """The process environment (`blocking.environ`)."""
    # Absolute and without `from`: a relative import runs importlib's Python code on every call.
    import azid_core.blocking

    return azid_core.blocking.environ()
