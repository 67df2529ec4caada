"""`Credential`: azid on trio without httpx, HTTP/1.1 by h11 over trio TCP/TLS streams.

>>> async with azid_trio.Credential(ClientSecretCredential(tenant_id, client_id, secret)) as cred:
...     token = await cred.get_token("https://vault.azure.net/.default")

Trust is `ssl.create_default_context()` (so SSL_CERT_FILE / SSL_CERT_DIR), unless `ssl_context` is
given. Connections are kept per host and reused. Proxies are not used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from azid_core.frontend import AsyncCredentialBase

from .http import TrioHttp

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    from azid_core.acquire import TokenSource
    from azid_core.effects import HttpRequest, HttpResponse, Waitable

__all__ = ["Credential"]


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

    async def close(self) -> None:
        await self._transport.aclose()
