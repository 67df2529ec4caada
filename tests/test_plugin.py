"""The azid pytest plugin (the `pytest11` entry point): the `azid_emulator` fixture in a user's own
test run (pytester), and here."""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import azid
import azid.pytest_plugin
import azid_requests
from azid_core.chains import DefaultAzureCredential

if TYPE_CHECKING:
    import pytest

    from azid.pytest_plugin import AzidEmulator

pytest_plugins = ["pytester"]

USER_TEST = """
import azid_requests
from azid_core.chains import DefaultAzureCredential

def my_code():
    return azid_requests.Credential(DefaultAzureCredential()).get_token("https://vault.azure.net/.default")

def test_my_code_gets_a_token(azid_emulator):
    token = my_code()
    assert azid_emulator.emulator.decode(token.token)["aud"] == "https://vault.azure.net"
    assert len(azid_emulator.emulator.requests) == 1
"""


def test_the_entry_point_names_the_plugin() -> None:
    (point,) = [p for p in entry_points(group="pytest11") if p.name == "azid"]
    assert point.value == "azid.pytest_plugin"
    # Loaded before coverage started (an entry point): run its module body again to measure it.
    importlib.reload(azid)
    importlib.reload(azid.pytest_plugin)


def test_a_users_test_passes_with_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=1)


def test_the_fixture_sets_the_environment(azid_emulator: AzidEmulator) -> None:
    assert azid_emulator.url.startswith("https://127.0.0.1:")
    for name, value in azid_emulator.environ.items():
        assert os.environ[name] == value
    assert os.environ["SSL_CERT_FILE"] == os.environ["REQUESTS_CA_BUNDLE"] == azid_emulator.ca_file
    assert "HTTPS_PROXY" not in os.environ
    with azid_requests.Credential(DefaultAzureCredential()) as credential:
        info = credential.get_token_info("https://storage.azure.com/.default")
    assert info.source == "ClientSecretCredential"
    assert azid_emulator.emulator.decode(info.token)["aud"] == "https://storage.azure.com"


def test_managed_identity_reaches_the_emulators_imds(azid_emulator: AzidEmulator) -> None:
    from azid_core.managed_identity.credential import ManagedIdentityCredential

    with azid_requests.Credential(ManagedIdentityCredential()) as credential:
        token = credential.get_token("https://vault.azure.net/.default")
    assert azid_emulator.emulator.managed_identity.decode(token.token)["aud"] == "https://vault.azure.net"
    assert len(azid_emulator.emulator.managed_identity.requests_to("imds")) == 1
