"""`Credential`: azid on trio without httpx, HTTP/1.1 by h11 over trio TCP/TLS streams.

>>> async with azid_trio.Credential(ClientSecretCredential(tenant_id, client_id, secret)) as cred:
...     token = await cred.get_token("https://vault.azure.net/.default")

Trust is `ssl.create_default_context()` (so SSL_CERT_FILE / SSL_CERT_DIR), unless `ssl_context` is
given. Connections are kept per host and reused. Proxies are not used. Developer tools run with
`trio.lowlevel.open_process` (PROTOCOL.md §0.1 "Processes"): both output streams read up to their cap
inside one `trio.fail_after`; on timeout, overflow or cancellation the child's whole process group is
killed and reaped.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import trio

from azid_core import blocking
from azid_core.effects import CommandResult
from azid_core.frontend import AsyncCredentialBase

from .http import TrioHttp

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    from trio.abc import ReceiveStream

    from azid_core.acquire import TokenSource
    from azid_core.effects import HttpRequest, HttpResponse, RunCommand, Waitable

__all__ = ["Credential"]


async def _drain(stream: ReceiveStream, into: bytearray, limit: int, scope: trio.CancelScope) -> None:
    """Read a child's output to its end, or to one byte over `limit`, which cancels `scope`."""
    while len(into) <= limit:
        chunk = await stream.receive_some(min(limit + 1 - len(into), 1 << 16))
        if not chunk:
            return
        into += chunk
    scope.cancel()


class Credential(AsyncCredentialBase):
    """An async azure-core credential for trio programs."""

    def __init__(
        self,
        core: TokenSource,
        *,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(core, clock=clock)
        self._transport = TrioHttp(ssl_context)

    def _new_event(self) -> Waitable:
        return trio.Event()

    async def _sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    async def _http(self, request: HttpRequest) -> HttpResponse:
        return await self._transport(request)

    async def _run(self, command: RunCommand) -> CommandResult:
        line = blocking.command_line(command)
        try:
            process = await trio.lowlevel.open_process(
                line.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=line.cwd,
                env=line.env,
                **line.group,
            )
        except OSError as exc:
            raise blocking.spawn_failure(line.argv[0], exc) from exc
        assert process.stdout is not None  # PIPE was asked for
        assert process.stderr is not None
        outputs = (bytearray(), bytearray())
        limit = command.max_output_bytes
        try:
            with trio.fail_after(command.timeout):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_drain, process.stdout, outputs[0], limit, nursery.cancel_scope)
                    nursery.start_soon(_drain, process.stderr, outputs[1], limit, nursery.cancel_scope)
                if max(map(len, outputs)) > limit:
                    raise blocking.command_too_large(command)
                returncode = await process.wait()
        except BaseException as exc:
            # Whether or not the child itself has exited: what it started may hold the pipes.
            blocking.kill_group(process.pid)
            if isinstance(exc, trio.TooSlowError):
                raise blocking.command_timeout(command) from None
            raise
        finally:
            with trio.CancelScope(shield=True):  # reap the child even when cancelled
                await process.stdout.aclose()
                await process.stderr.aclose()
                await process.wait()
        return CommandResult(returncode, bytes(outputs[0]), bytes(outputs[1]))

    async def close(self) -> None:
        await self._transport.aclose()
