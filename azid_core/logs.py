"""azid's log records: DEBUG per step under `azid.<area>`, nothing at WARNING or above (§0.7).

`logging` costs ~12 ms to import, so it is imported at the first record, not with azid_core.
Callers pass already-masked text; arguments are formatted lazily by `logging`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logging import Logger

__all__ = ["debug"]

# One logger per area, looked up once: `logging.getLogger` takes the module's lock on every call,
# and a token request writes several records.
_loggers: dict[str, Logger] = {}
_DEBUG = 10  # logging.DEBUG


def debug(area: str, message: str, *args: Any) -> None:
    """Log `message % args` at DEBUG on `azid.<area>`."""
    logger = _loggers.get(area)
    if logger is None:
        import logging

        logger = _loggers[area] = logging.getLogger(f"azid.{area}")
    # The check Logger.debug makes first, without its call: records are off nearly always.
    if logger.isEnabledFor(_DEBUG):
        logger.debug(message, *args)
