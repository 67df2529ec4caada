"""Chains: construction to first token when managed identity is refused and only `az` is there.

    python -m benchmarks.chains [--rounds 11] [--azure-rounds 3]

A fake `az` (azid_core.testing.fake_tools) is the only tool on PATH (a temporary directory and this
interpreter's directory), and the managed-identity endpoint is a loopback port nothing listens on
(AZURE_POD_IDENTITY_AUTHORITY_HOST for DefaultAzureCredential, `imds_endpoint` for the explicit
chain). Everything stays on 127.0.0.1 (`tests.loopback.guard_network`).

- azid `DefaultAzureCredential(env={"AZURE_POD_IDENTITY_AUTHORITY_HOST": <closed port>})` and
  `ChainedTokenCredential(ManagedIdentityCredential(imds_endpoint=<closed port>, imds_probe=True),
  AzureCliCredential())`, each wrapped by every adapter: a fresh credential per sample, construction
  plus the first `get_token` (the refused connection, then one `az` run). Target <= 50 ms.
- azure-identity's `DefaultAzureCredential` in the same run, with the same fake `az` and refused IMDS;
  the shared-token-cache, VS Code and broker members excluded (they read other tools' files), so its
  only difference is its own behaviour. It can take seconds, so its rounds are capped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import traceback
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from azid_core import (
    AzureCliCredential,
    ChainedTokenCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)
from azid_core.testing.fake_tools import az_output, fake_jwt, fake_tool_script
from tests.fake_tools import install
from tests.loopback import guard_network

from ._common import table
from .managed_identity import adapters, closed_port, one_call

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from azid_core.acquire import TokenSource

SCOPE = "https://vault.azure.net/.default"
TOKEN = fake_jwt("benchmark-az-user")
TARGET_MS = 50.0


@contextmanager
def only_fake_az() -> Iterator[str]:
    """PATH holds a fake `az` and the interpreter's directory; no proxy or AZURE_* variable is set.
    Yields the refused managed-identity endpoint."""
    guard_network()
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.upper().startswith(("AZURE_", "IDENTITY_", "MSI_", "IMDS_")) or name.lower().endswith(
            "_proxy"
        ):
            del os.environ[name]
    with tempfile.TemporaryDirectory(prefix="azid-bench-chains-") as directory:
        install(directory, "az", fake_tool_script(stdout=az_output(TOKEN)))
        os.environ["PATH"] = os.pathsep.join([directory, os.path.dirname(sys.executable)])
        try:
            yield f"http://127.0.0.1:{closed_port()}"
        finally:
            os.environ.clear()
            os.environ.update(saved)


def setups(endpoint: str) -> dict[str, Callable[[], TokenSource]]:
    return {
        "DefaultAzureCredential": lambda: DefaultAzureCredential(
            env={"AZURE_POD_IDENTITY_AUTHORITY_HOST": endpoint}
        ),
        "Chained(ManagedIdentity probe, AzureCli)": lambda: ChainedTokenCredential(
            ManagedIdentityCredential(imds_endpoint=endpoint, imds_probe=True, env={}), AzureCliCredential()
        ),
    }


def fetch(loop: str | None) -> Callable[[Any], Any]:
    def call(credential: Any) -> Any:
        result = credential.get_token(SCOPE)
        if loop is None:
            assert result.token == TOKEN
            return result

        async def checked() -> Any:
            token = await result
            assert token.token == TOKEN
            return token

        return checked()

    return call


def azid_rows(endpoint: str, rounds: int) -> list[list[str]]:
    rows = []
    for setup, make_core in setups(endpoint).items():
        for name, loop, wrap in adapters():

            def make(
                wrap: Callable[[TokenSource], Any] = wrap, make_core: Callable[[], TokenSource] = make_core
            ) -> Any:
                return wrap(make_core())

            one_call(loop, make, fetch(loop))  # untimed: imports and lazy set-up
            samples = [one_call(loop, make, fetch(loop)) for _ in range(rounds)]
            median = statistics.median(samples) * 1000
            verdict = "ok" if median <= TARGET_MS else "MISSED"
            rows.append([f"azid {setup}", name, f"{median:.1f}", f"{max(samples) * 1000:.1f}", verdict])
    return rows


def azure_identity_row(endpoint: str, rounds: int) -> list[str]:
    name = "azure-identity DefaultAzureCredential"
    try:
        from azure.identity import DefaultAzureCredential as AzureDefaultAzureCredential
    except ImportError as exc:
        return [name, "sync", f"skipped: {exc}", "", ""]

    def make() -> Any:
        return AzureDefaultAzureCredential(
            exclude_shared_token_cache_credential=True,
            exclude_visual_studio_code_credential=True,
            exclude_broker_credential=True,
        )

    os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = endpoint
    try:
        samples = [one_call(None, make, fetch(None)) for _ in range(rounds)]
    finally:
        del os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"]
    median = statistics.median(samples) * 1000
    return [name, "sync", f"{median:.1f}", f"{max(samples) * 1000:.1f}", "(reference)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--azure-rounds", type=int, default=3)
    args = parser.parse_args()
    lines = [
        f"construction + first token, managed identity refused, only a fake az on PATH: "
        f"median of {args.rounds} (azure-identity: {args.azure_rounds})",
        "",
    ]
    try:
        with only_fake_az() as endpoint:
            rows = azid_rows(endpoint, args.rounds)
            rows.append(azure_identity_row(endpoint, args.azure_rounds))
        lines.append(table(["chain", "path", "median ms", "max ms", f"<= {TARGET_MS:.0f} ms"], rows))
    except Exception:
        lines += ["ERROR:", traceback.format_exc()]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
