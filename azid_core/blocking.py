"""The host as adapters see it: wall clock, sleeping, thread events, the process environment, files.

The one module of azid_core allowed to touch the operating system. Flows never import it; the
credential frontends and constructors take their defaults from here.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from typing import TYPE_CHECKING

from .effects import FileContent
from .errors import TransportError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .effects import ReadFile

__all__ = ["clock", "environ", "local_naive_to_epoch", "new_event", "read_file", "sleep"]

clock = time.time
sleep = time.sleep
new_event = threading.Event


def environ() -> Mapping[str, str]:
    """The process environment. Constructors read what they need from it once, at construction
    (PROTOCOL.md §0.2), and keep only those values: no copy of the whole mapping is needed."""
    return os.environ


def local_naive_to_epoch(text: str) -> float:
    """Epoch seconds of `YYYY-MM-DD HH:MM:SS[.f]` read as this host's local time (TZ, the zone
    database): how the Azure CLI's `expiresOn` is meant (PROTOCOL.md §0.6, §5.2)."""
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()  # a naive datetime is local time


# O_NONBLOCK: opening a FIFO must not wait for a writer (it is then refused as not a regular file).
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)


def read_file(effect: ReadFile) -> FileContent:
    """Carry out a `ReadFile` effect (PROTOCOL.md §0.1): regular files only; `nofollow` refuses a
    final symlink; a matching `unless_mtime_ns` answers `data=None` unread; at most `max_bytes` + 1
    bytes are read, and `size` comes from stat. Failures are `file_not_found` or `file_error`."""
    path = effect.path
    try:
        if effect.nofollow and stat.S_ISLNK(os.lstat(path).st_mode):
            raise TransportError("file_error", f"{path} is a symbolic link")
        descriptor = os.open(path, _OPEN_FLAGS | (getattr(os, "O_NOFOLLOW", 0) if effect.nofollow else 0))
    except FileNotFoundError as exc:
        raise TransportError("file_not_found", f"{path} does not exist") from exc
    except OSError as exc:
        raise TransportError("file_error", f"{path} cannot be opened: {exc.strerror}") from exc
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise TransportError("file_error", f"{path} is not a regular file")
        if effect.unless_mtime_ns is not None and status.st_mtime_ns == effect.unless_mtime_ns:
            return FileContent(None, status.st_size, status.st_mtime_ns)
        chunks: list[bytes] = []
        wanted = effect.max_bytes + 1
        while wanted > 0 and (chunk := os.read(descriptor, min(wanted, 1 << 16))):
            chunks.append(chunk)
            wanted -= len(chunk)
        return FileContent(b"".join(chunks), status.st_size, status.st_mtime_ns)
    except OSError as exc:
        raise TransportError("file_error", f"{path} cannot be read: {exc.strerror}") from exc
    finally:
        os.close(descriptor)
