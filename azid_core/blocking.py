"""The host as sync adapters see it: wall clock, sleeping, thread events, the process environment.

The one module of azid_core allowed to touch the operating system. Flows never import it; the
credential frontends and constructors take their defaults from here.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["clock", "environ", "new_event", "sleep"]

clock = time.time
sleep = time.sleep
new_event = threading.Event


def environ() -> Mapping[str, str]:
    """The process environment. Constructors read what they need from it once, at construction
    (PROTOCOL.md §0.2), and keep only those values: no copy of the whole mapping is needed."""
    return os.environ
