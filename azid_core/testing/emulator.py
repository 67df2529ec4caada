"""`IdentityEmulator`: one pure request handler playing Microsoft Entra ID and every managed-identity
source (PROTOCOL.md §1, §2, §4).

It is an `EntraEmulator` (token endpoint, OpenID configuration, JWKS, ADFS, user realm, Pipelines
OIDC) whose `managed_identity` part (a `ManagedIdentityEmulator`) answers the paths in
`managed_identity.PATHS` on the same handler, with the same clock, signing key, request log and
fault queue: a managed-identity token verifies against the Entra JWKS and serves as a federated
assertion. Use it in-process as an effect handler (`run(flow, emulator)`), or serve it on a socket
(the socket server calls `serve` and acts the `Served` reply out).

Registration: `add_app(tenant_id, client_id, client_secret=None) -> EntraApp` (then
`app.add_certificate(pem_or_der)`, `app.add_federated(issuer, subject)`), `add_user(tenant_id,
username, password)`, `add_service_connection(app, connection_id)`, `add_user_assigned(client_id,
object_id, resource_id)`. Faults: `fail_next(Fault(...))` (see `testing.service.Fault`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .entra import EntraEmulator
from .managed_identity import PATHS, ManagedIdentity, ManagedIdentityEmulator

if TYPE_CHECKING:
    from collections.abc import Callable

    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from ..effects import HttpRequest, HttpResponse

__all__ = ["IdentityEmulator"]


class IdentityEmulator(EntraEmulator):
    """Entra ID and the managed-identity endpoints on one handler; see the module docstring.
    `managed_identity_lifetime` is the managed-identity tokens' lifetime (the services' 24 hours)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        token_lifetime: int = 3600,
        refresh_in: int | None = None,
        signing_key: RSAPrivateKey | None = None,
        managed_identity_lifetime: int = 86400,
        system_assigned: bool = True,
    ) -> None:
        super().__init__(
            clock=clock, token_lifetime=token_lifetime, refresh_in=refresh_in, signing_key=signing_key
        )
        part = ManagedIdentityEmulator(
            clock=clock, token_lifetime=managed_identity_lifetime, system_assigned=system_assigned
        )
        # One key, one log, one fault queue: the part shares the emulator's.
        part.key, part.requests, part.delays, part._faults = (
            self.key,
            self.requests,
            self.delays,
            self._faults,
        )
        self.managed_identity = part

    def add_user_assigned(self, client_id: str, object_id: str, resource_id: str) -> ManagedIdentity:
        """A user-assigned managed identity the managed-identity endpoints serve."""
        return self.managed_identity.add_user_assigned(client_id, object_id, resource_id)

    def _source(self, request: HttpRequest) -> str | None:
        if self._is_managed_identity(request):
            return self.managed_identity._source(request)
        return super()._source(request)

    def _route(self, request: HttpRequest) -> HttpResponse:
        if self._is_managed_identity(request):
            return self.managed_identity._route(request)
        return super()._route(request)

    @staticmethod
    def _is_managed_identity(request: HttpRequest) -> bool:
        return urlsplit(request.url).path in PATHS.values()
