"""Chains on every adapter path (PROTOCOL.md §6, §4.5): a managed-identity endpoint that refuses
connections costs nothing, and the chain goes on to the Azure CLI.

Only a fake `az` is on PATH (a temporary directory, plus this interpreter's directory, so a real az
can never run), and the managed-identity endpoint is a loopback port nothing listens on: no request
ever leaves 127.0.0.1 (the default IMDS address is never used).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import pytest

from azid_core.chains import ChainedTokenCredential, DefaultAzureCredential
from azid_core.devtools.az import AzureCliCredential
from azid_core.errors import CredentialUnavailableError
from azid_core.managed_identity.credential import ManagedIdentityCredential
from azid_core.testing.fake_tools import az_output, fake_jwt, fake_tool_script
from tests.conftest import closed_port
from tests.fake_tools import install, records

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path as FilePath

    from azid_core.acquire import TokenSource
    from tests.paths import Path

SCOPE = "https://vault.azure.net/.default"
AZ_TOKEN = fake_jwt("az-user")
AZ_EXPIRES = 1893553445


@pytest.fixture
def bin_dir(tmp_path: FilePath, monkeypatch: pytest.MonkeyPatch) -> FilePath:
    """A PATH of a temporary directory and the interpreter's directory only."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", os.pathsep.join([str(directory), os.path.dirname(sys.executable)]))
    return directory


@pytest.fixture
def fake_az(bin_dir: FilePath) -> FilePath:
    """A fake `az` that prints a token; returns where it records its runs."""
    record = bin_dir.parent / "az.jsonl"
    install(bin_dir, "az", fake_tool_script(stdout=az_output(AZ_TOKEN), record_path=str(record)))
    return record


def refused_imds() -> str:
    return f"http://127.0.0.1:{closed_port()}"


def chains() -> dict[str, Callable[[], TokenSource]]:
    return {
        "DefaultAzureCredential": lambda: DefaultAzureCredential(
            env={"AZURE_POD_IDENTITY_AUTHORITY_HOST": refused_imds()}
        ),
        "ChainedTokenCredential": lambda: ChainedTokenCredential(
            ManagedIdentityCredential(imds_endpoint=refused_imds(), imds_probe=True, env={}),
            AzureCliCredential(env={}),
        ),
    }


@pytest.mark.parametrize("kind", ["DefaultAzureCredential", "ChainedTokenCredential"])
def test_a_refused_managed_identity_endpoint_falls_through_to_az(
    path: Path, fake_az: FilePath, kind: str
) -> None:
    core = chains()[kind]()
    cred = path.credential(core)
    try:
        token = path.get_token(cred, SCOPE)
        assert tuple(token) == (AZ_TOKEN, AZ_EXPIRES)
        info = path.get_token_info(cred, SCOPE)  # the chain's cache: az is not run again
        assert (info.token, info.source) == (AZ_TOKEN, "AzureCliCredential")
    finally:
        path.close(cred)
    assert isinstance(core, ChainedTokenCredential)
    assert core.selected == "AzureCliCredential"
    runs = records(fake_az)
    assert len(runs) == 1
    assert runs[0]["argv"][1:3] == ["account", "get-access-token"]


def test_nothing_available_lists_every_member(path: Path, bin_dir: FilePath) -> None:
    core = DefaultAzureCredential(env={"AZURE_POD_IDENTITY_AUTHORITY_HOST": refused_imds()})
    cred = path.credential(core)
    try:
        with pytest.raises(CredentialUnavailableError) as caught:
            path.get_token(cred, SCOPE)
    finally:
        path.close(cred)
    error = caught.value
    assert [(name, verdict) for name, verdict, _ in error.attempts] == [
        ("EnvironmentCredential", "unavailable"),
        ("WorkloadIdentityCredential", "unavailable"),
        ("ManagedIdentityCredential", "unavailable"),
        ("AzureCliCredential", "unavailable"),
        ("AzurePowerShellCredential", "unavailable"),
        ("AzureDeveloperCliCredential", "unavailable"),
    ]
    assert str(error).startswith("DefaultAzureCredential could not get a token. Attempts, in order:\n")
    assert error.attempts[2][2].startswith("ManagedIdentityCredential (imds): the endpoint http://127.0.0.1:")
    assert "is unreachable (connect)" in error.attempts[2][2]
    assert (
        error.attempts[3][2] == "AzureCliCredential: Azure CLI not found on PATH: looked for 'az' (not_found)"
    )
    assert core.selected is None
