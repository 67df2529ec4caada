"""The host as adapters see it: wall clock, sleeping, thread events, the process environment, random
bytes, files, processes.

The one module of azid_core allowed to touch the operating system. Flows never import it; the
credential frontends and constructors take their defaults from here. For `RunCommand` it also holds
what every adapter shares (PROTOCOL.md §0.1 "Processes"): the PATH lookup, the child's environment,
the process-group options, killing the group and the failures, so the async adapters differ from
`run_command` only in how they wait.
"""

from __future__ import annotations

import contextlib
import os
import queue
import stat
import threading
import time
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from .effects import CommandResult, FileContent
from .errors import TransportError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .effects import ReadFile, RunCommand

__all__ = [
    "CommandLine",
    "clock",
    "command_line",
    "command_timeout",
    "command_too_large",
    "environ",
    "find_program",
    "kill_group",
    "local_naive_to_epoch",
    "new_event",
    "random_bytes",
    "read_file",
    "run_command",
    "sleep",
    "spawn_failure",
]

clock = time.time
sleep = time.sleep
new_event = threading.Event
# What `secrets.token_bytes` returns, without its two Python layers: request ids are made per request.
random_bytes = os.urandom


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


_WINDOWS = os.name == "nt"
# 0x200 is subprocess.CREATE_NEW_PROCESS_GROUP, spelled out: subprocess is imported only when a command runs.
_NEW_GROUP: dict[str, Any] = {"creationflags": 0x00000200} if _WINDOWS else {"start_new_session": True}


class CommandLine(NamedTuple):
    """How to start a `RunCommand`'s process, with `subprocess.Popen`'s keywords of the same names."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    #: The keyword that gives the child a process group of its own to kill (§0.1): a new session on
    #: POSIX, CREATE_NEW_PROCESS_GROUP on Windows.
    group: dict[str, Any]


def find_program(name: str, search_path: str, *, windows: bool = _WINDOWS) -> str | None:
    """The file a bare program `name` runs: the first executable match in the absolute directories of
    `search_path`, trying `name.cmd`, `name.exe`, then `name` on Windows. A relative entry (`""`,
    `.`) would mean the working directory, which is never searched (PROTOCOL.md §0.1)."""
    suffixes = (".cmd", ".exe", "") if windows else ("",)
    for directory in search_path.split(";" if windows else ":"):
        if not os.path.isabs(directory):
            continue
        for suffix in suffixes:
            candidate = os.path.join(directory, name + suffix)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    return None


def command_line(effect: RunCommand) -> CommandLine:
    """The process to start for `effect`: the process environment with the effect's overrides, and a
    bare `argv[0]` resolved on that environment's PATH (a name with a directory is used as given).
    Raises `TransportError` `not_found`, naming the PATH searched, or `spawn` for an empty argv."""
    if not effect.argv:
        raise TransportError("spawn", "the command has no program to run")
    env = {**os.environ, **dict(effect.env)}
    name = effect.argv[0]
    program = name
    if not os.path.dirname(name):
        search_path = env.get("PATH", os.defpath)  # execvp's default when PATH is unset
        found = find_program(name, search_path)
        if found is None:
            raise TransportError("not_found", f"{name} was not found on PATH {search_path!r}")
        program = found
    return CommandLine([program, *effect.argv[1:]], env, effect.cwd, dict(_NEW_GROUP))


def spawn_failure(program: str, exc: OSError) -> TransportError:
    """The `spawn` failure: the program exists but cannot be started (permission, exec format)."""
    return TransportError("spawn", f"{program} cannot be started: {exc.strerror or exc}")


def command_timeout(effect: RunCommand) -> TransportError:
    return TransportError("timeout", f"{effect.argv[0]} did not finish within {effect.timeout} s")


def command_too_large(effect: RunCommand) -> TransportError:
    return TransportError("too_large", f"{effect.argv[0]} wrote over {effect.max_output_bytes} bytes")


def kill_group(pid: int) -> None:
    """Kill the process group led by `pid` (a child started with `CommandLine`'s options): the child
    and whatever it started, which would otherwise outlive a timeout holding its pipes (§0.1)."""
    if _WINDOWS:  # pragma: no cover - tested on POSIX only; taskkill /T ends the process tree
        import subprocess  # see run_command

        taskkill = os.path.join(os.environ.get("SYSTEMROOT", r"C:\Windows"), "System32", "taskkill.exe")
        subprocess.run(  # an absolute path and fixed arguments
            [taskkill, "/F", "/T", "/PID", str(pid)], capture_output=True, timeout=10, check=False
        )
        return
    import signal  # see run_command

    with contextlib.suppress(ProcessLookupError):  # the whole group has exited already
        os.killpg(pid, signal.SIGKILL)


class _Reader(threading.Thread):
    """Reads one output pipe to its end, or to one byte over `limit`; then closes it and reports."""

    def __init__(self, stream: IO[bytes], limit: int, finished: queue.SimpleQueue[_Reader]) -> None:
        super().__init__(daemon=True)  # a killed group ends it; nothing must wait for it at exit
        self._stream = stream
        self._limit = limit
        self._finished = finished
        self.data = b""

    @property
    def overflowed(self) -> bool:
        return len(self.data) > self._limit

    def run(self) -> None:
        chunks: list[bytes] = []
        wanted = self._limit + 1
        try:
            while wanted > 0 and (chunk := os.read(self._stream.fileno(), min(wanted, 1 << 16))):
                chunks.append(chunk)
                wanted -= len(chunk)
        finally:
            self.data = b"".join(chunks)
            self._stream.close()
            self._finished.put(self)


def run_command(effect: RunCommand) -> CommandResult:
    """Carry out a `RunCommand` effect (PROTOCOL.md §0.1 "Processes"): no shell, a bare program found
    on PATH and never in the working directory, stdin null, the child in a process group of its own,
    stdout and stderr read by a thread each up to `max_output_bytes` + 1. One deadline, `timeout`,
    covers the run; on timeout or overflow the whole group is killed and reaped. Output is returned as
    bytes: the flows decode it. Failures: `not_found`, `spawn`, `timeout`, `too_large`."""
    # Imported here: ~2 ms that only developer-tool credentials need (cold-start budget).
    import subprocess

    line = command_line(effect)
    deadline = time.monotonic() + effect.timeout
    try:
        process = subprocess.Popen(  # an argv list, no shell (§0.1)
            line.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=line.cwd,
            env=line.env,
            **line.group,
        )
    except OSError as exc:
        raise spawn_failure(line.argv[0], exc) from exc
    assert process.stdout is not None  # PIPE was asked for
    assert process.stderr is not None
    finished: queue.SimpleQueue[_Reader] = queue.SimpleQueue()
    readers = (
        _Reader(process.stdout, effect.max_output_bytes, finished),
        _Reader(process.stderr, effect.max_output_bytes, finished),
    )
    try:
        for reader in readers:
            reader.start()
        for _ in readers:
            if finished.get(timeout=max(0.0, deadline - time.monotonic())).overflowed:
                raise command_too_large(effect)
        returncode = process.wait(max(0.0, deadline - time.monotonic()))
    except BaseException as exc:
        kill_group(process.pid)
        process.wait()  # reap: SIGKILL cannot be ignored
        if isinstance(exc, (queue.Empty, subprocess.TimeoutExpired)):
            raise command_timeout(effect) from None
        raise
    return CommandResult(returncode, readers[0].data, readers[1].data)
