"""azid's log records: DEBUG per step under `azid.<area>`, nothing at WARNING or above (§0.7).

`logging` costs ~12 ms to import, so it is imported at the first record, not with azid_core.
Callers pass already-masked text; arguments are formatted lazily by `logging`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["debug"]


def debug(area: str, message: str, *args: Any) -> None:
    """Log `message % args` at DEBUG on `azid.<area>`."""
    import logging

    logging.getLogger(f"azid.{area}").debug(message, *args)
