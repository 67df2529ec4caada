"""The emulator azid serves: Entra ID and the managed-identity endpoints behind one handler, with one
app registered, and the environment that points every credential at it.

This module is the only place the application layer names the emulator classes of
`azid_core.testing`, so a change there is a change here alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from azid_core.testing import EntraEmulator
from azid_core.testing.managed_identity import IMDS_BASE, PATHS, ManagedIdentityEmulator

if TYPE_CHECKING:
    from collections.abc import Callable

    from azid_core.effects import HttpRequest, HttpResponse

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "TENANT_ID", "Emulator", "emulator_environment"]

# The app every emulator azid starts has registered (not a secret: it opens nothing but the emulator).
TENANT_ID = "00000000-a21d-0000-0000-000000000001"
CLIENT_ID = "00000000-a21d-0000-0000-00000000c11e"
CLIENT_SECRET = "azid-emulator-client-secret"


class Emulator:
    """Entra ID (`entra`) and every managed-identity source (`managed_identity`) as one
    `HttpRequest -> HttpResponse` handler, with the app `TENANT_ID`/`CLIENT_ID`/`CLIENT_SECRET`."""

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self.entra = EntraEmulator(clock=clock)
        self.managed_identity = ManagedIdentityEmulator(clock=clock)
        self.app = self.entra.add_app(TENANT_ID, CLIENT_ID, CLIENT_SECRET)
        self._mi_paths = frozenset(PATHS.values())

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if urlsplit(request.url).path in self._mi_paths:
            return self.managed_identity(request)
        return self.entra(request)

    def decode(self, token: str) -> dict[str, Any]:
        """The claims of an access token this emulator issued from Entra ID (signature checked)."""
        return self.entra.decode(token)


def emulator_environment(url: str, ca_file: str | None) -> dict[str, str]:
    """The variables that point the credentials at an emulator served at `url`: EnvironmentCredential
    (and so DefaultAzureCredential) through the authority and the app's secret, ManagedIdentityCredential
    through IMDS at `<url>/imds` (PROTOCOL.md §4.1 row 8), and `ca_file` trusted by requests and httpx."""
    environment = {
        "AZURE_AUTHORITY_HOST": url,
        "AZURE_TENANT_ID": TENANT_ID,
        "AZURE_CLIENT_ID": CLIENT_ID,
        "AZURE_CLIENT_SECRET": CLIENT_SECRET,
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": url + IMDS_BASE,
    }
    if ca_file is not None:
        environment["SSL_CERT_FILE"] = ca_file
        environment["REQUESTS_CA_BUNDLE"] = ca_file
    return environment
