"""The host as sync adapters see it: wall clock, sleeping, thread events, the process environment.

The one module of azid_core allowed to touch the operating system. Flows never import it; the
credential frontends and constructors take their defaults from here.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["clock", "environ", "new_event", "sleep"]

clock = time.time
sleep = time.sleep
new_event = threading.Event


def environ() -> dict[str, str]:
    """A snapshot of the process environment (constructors take it once, PROTOCOL.md §0.2)."""
    return dict(os.environ)
