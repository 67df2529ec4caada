"""The `azid_emulator` pytest fixture (loaded through the `pytest11` entry point `azid`).

It starts the emulator (Entra ID and the managed-identity endpoints) on 127.0.0.1 over HTTPS with a CA
of its own, and sets, with monkeypatch for the test's duration, the variables that point every
credential at it: AZURE_AUTHORITY_HOST, AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET
(EnvironmentCredential, so DefaultAzureCredential), AZURE_POD_IDENTITY_AUTHORITY_HOST (IMDS for
ManagedIdentityCredential), and SSL_CERT_FILE / REQUESTS_CA_BUNDLE so that requests and httpx trust it.
Proxy variables are removed: the emulator is local. Test your own Azure-calling code with no account
and no network::

    import azid_requests
    from azid_core.chains import DefaultAzureCredential

    def test_my_code_gets_a_token(azid_emulator):
        credential = azid_requests.Credential(DefaultAzureCredential())
        token = credential.get_token("https://vault.azure.net/.default")
        assert azid_emulator.emulator.decode(token.token)["aud"] == "https://vault.azure.net"
        assert azid_emulator.emulator.requests  # what the emulator received

The fixture's value has `url`, `ca_file`, `environ` (the variables set) and `emulator`, the
`azid_core.testing.IdentityEmulator` behind it: register more apps with `emulator.add_app`, inject
faults with `emulator.fail_next(Fault(...))` (delays and dropped connections are acted out on the
socket), verify tokens with `emulator.decode` or its JWKS at `<url>/<tenant>/discovery/v2.0/keys`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from azid_core.testing import IdentityEmulator

__all__ = ["AzidEmulator", "azid_emulator"]

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class AzidEmulator:
    """A running emulator: its `url`, CA file, the variables the fixture set and the handler."""

    def __init__(self, url: str, ca_file: str, environ: dict[str, str], emulator: IdentityEmulator) -> None:
        self.url = url
        self.ca_file = ca_file
        self.environ = environ
        self.emulator = emulator


@pytest.fixture
def azid_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[AzidEmulator]:
    """The emulator on 127.0.0.1 (HTTPS) and the environment pointing every credential at it."""
    from azid_core import blocking

    from .emulator import emulator_environment, new_emulator
    from .server import EmulatorServer

    emulator = new_emulator(clock=blocking.clock)
    with EmulatorServer(emulator, tls=True) as server:
        assert server.ca_file is not None  # tls=True always makes one
        environ = emulator_environment(server.url, server.ca_file)
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        for name in _PROXY_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        yield AzidEmulator(server.url, server.ca_file, environ, emulator)
