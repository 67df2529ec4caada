"""Effects a flow yields and the replies an adapter sends back (PROTOCOL.md §0.1).

Effects and replies are immutable records. They are `NamedTuple`s rather than frozen dataclasses:
both are frozen and carry no per-instance dict, but `dataclasses` costs about 16 ms to import on our
reference machine and `import azid_core` has a 15 ms budget. Their reprs never show bodies, header
values or query values, which may hold secrets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from typing import TypeAlias

__all__ = [
    "AwaitFlight",
    "CommandResult",
    "Effect",
    "FileContent",
    "Flow",
    "FunctionCall",
    "FunctionResult",
    "HttpRequest",
    "HttpResponse",
    "ReadFile",
    "Reply",
    "RunCommand",
    "Sleep",
    "Waitable",
]

MIB = 1 << 20


def _without_query(url: str) -> str:
    base, _, query = url.partition("?")
    if not query:
        return base
    names = [part.partition("=")[0] for part in query.split("&")]
    return base + "?" + "&".join(f"{name}=…" for name in names)


class HttpRequest(NamedTuple):
    """Send one HTTP request and return its `HttpResponse`.

    `timeout` is one deadline for connect, send and receive; `connect_timeout` also bounds connection
    setup. At most `max_response_bytes` + 1 body bytes are read (more is the `too_large` failure).
    `bypass_proxy`, `pin_sha1`, `tls_server_name` and `ca_pem` serve managed identity and the AKS
    token proxy (PROTOCOL.md §0.1).
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    timeout: float = 30.0
    connect_timeout: float | None = None
    max_response_bytes: int = MIB
    bypass_proxy: bool = False
    pin_sha1: bytes | None = None
    tls_server_name: str | None = None
    ca_pem: bytes | None = None

    def __repr__(self) -> str:
        return f"HttpRequest({self.method} {_without_query(self.url)}, {len(self.body)} body bytes)"


class HttpResponse(NamedTuple):
    """The status, headers (in wire order, names as sent) and body of an HTTP response."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def __repr__(self) -> str:
        return f"HttpResponse({self.status}, {len(self.body)} body bytes)"

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


class RunCommand(NamedTuple):
    """Run a program without a shell; `env` holds overrides on top of the adapter's environment."""

    argv: tuple[str, ...]
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    timeout: float = 10.0
    max_output_bytes: int = MIB

    def __repr__(self) -> str:
        return f"RunCommand({self.argv[0] if self.argv else ''!r}, {len(self.argv) - 1} arguments)"


class CommandResult(NamedTuple):
    returncode: int
    stdout: bytes
    stderr: bytes

    def __repr__(self) -> str:
        return f"CommandResult({self.returncode}, {len(self.stdout)}+{len(self.stderr)} output bytes)"


class ReadFile(NamedTuple):
    """Read a regular file; a matching `unless_mtime_ns` returns `data=None` without reading."""

    path: str
    max_bytes: int = MIB
    unless_mtime_ns: int | None = None
    nofollow: bool = False


class FileContent(NamedTuple):
    data: bytes | None
    size: int
    mtime_ns: int

    def __repr__(self) -> str:
        return f"FileContent({self.size} bytes, mtime_ns={self.mtime_ns})"


class Sleep(NamedTuple):
    """Wait `seconds`. The reply is the wall-clock epoch time after waking (or None)."""

    seconds: float


class FunctionCall(NamedTuple):
    """Call user code (an assertion callback, say) with no arguments and reply with its result.

    Sync adapters call `function()`; async adapters call it and await the result when it is
    awaitable, so one flow serves a plain function and an `async def` alike. `purpose` names what the
    result is for, for logs and messages.
    """

    function: Callable[[], object]
    purpose: str

    def __repr__(self) -> str:
        return f"FunctionCall({self.purpose})"


class FunctionResult(NamedTuple):
    """What user code returned, or the exception it raised (`error`), for the flow to judge."""

    value: object = None
    error: Exception | None = None

    def __repr__(self) -> str:
        outcome = f"raised {type(self.error).__name__}" if self.error is not None else "returned"
        return f"FunctionResult({outcome})"


class Waitable(Protocol):
    """What single-flight waits on: a `threading.Event`, `anyio.Event` or `trio.Event`."""

    def set(self) -> None: ...


class AwaitFlight(NamedTuple):
    """Wait until another caller's token request for the same cache key has ended.

    `event` was made by the adapter's own event factory, so the adapter knows how to wait on it.
    The reply is the wall-clock epoch time after waking (PROTOCOL.md §7.3).
    """

    event: Waitable


Effect: TypeAlias = HttpRequest | RunCommand | ReadFile | Sleep | AwaitFlight | FunctionCall
Reply: TypeAlias = HttpResponse | CommandResult | FileContent | FunctionResult | float | None
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")
    Flow: TypeAlias = Generator[Effect, Reply, T]
