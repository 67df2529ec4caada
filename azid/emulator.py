"""The emulator azid serves (azid_core.testing's IdentityEmulator: Entra ID and the managed-identity
endpoints on one handler) with one app registered, and the environment that points every credential
at it.

`new_emulator` is the only place the application layer names the emulator class, so a change there
is a change here alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from azid_core.testing import IdentityEmulator
from azid_core.testing.managed_identity import IMDS_BASE

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "TENANT_ID", "emulator_environment", "new_emulator"]

# The app every emulator azid starts has registered (not a secret: it opens nothing but the emulator).
TENANT_ID = "00000000-a21d-0000-0000-000000000001"
CLIENT_ID = "00000000-a21d-0000-0000-00000000c11e"
CLIENT_SECRET = "azid-emulator-client-secret"


def new_emulator(*, clock: Callable[[], float]) -> IdentityEmulator:
    """An emulator on `clock` with the app `TENANT_ID`/`CLIENT_ID`/`CLIENT_SECRET` registered."""
    emulator = IdentityEmulator(clock=clock)
    emulator.add_app(TENANT_ID, CLIENT_ID, CLIENT_SECRET)
    return emulator


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
