"""AzureCliCredential: the cached `get_token` in ns per call, and the first call, beside azure-identity.

    python -m benchmarks.developer_tools [--repeats 7] [--number 100000] [--azure-calls 20] [--rounds 11]

A fake `az` (`azid_core.testing.fake_tools`, a Python script printing a canned token) sits first on
a temporary PATH; it records every run, so the table shows how many times each credential spawned
it. Nothing touches the network (the loopback audit hook of `tests.loopback` is on).

- cached: azid's AzureCliCredential through azid_requests and through azid_httpx's async
  credential (asyncio) runs az once and then serves the cached token (§7); azure-identity's
  AzureCliCredential runs az on every call, so it gets fewer calls (`--azure-calls`).
- first call: a fresh credential, construction plus the first `get_token` (one az run), median of
  `--rounds`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import traceback
from typing import TYPE_CHECKING, Any

from azid_core.devtools.az import AzureCliCredential
from azid_core.testing.fake_tools import az_output, fake_jwt, fake_tool_script
from tests.fake_tools import install, records
from tests.loopback import guard_network

from ._common import SCOPE, run_async, table
from .cached_token import calls_per_repeat, time_async, time_sync

if TYPE_CHECKING:
    from collections.abc import Callable

TOKEN = fake_jwt("developer-tools-benchmark")


def fake_az(directory: str) -> str:
    """Put the fake az first on PATH; return the file its runs are recorded in."""
    record = os.path.join(directory, "az.jsonl")
    script = fake_tool_script(
        stdout=az_output(TOKEN, expires_on=int(time.time()) + 3 * 3600), record_path=record
    )
    install(directory, "az", script)
    os.environ["PATH"] = directory + os.pathsep + os.environ.get("PATH", os.defpath)
    return record


def spawns(record: str) -> int:
    return len(records(record))


def azid_sync() -> Any:
    import azid_requests

    return azid_requests.Credential(AzureCliCredential())


def azid_async() -> Any:
    import azid_httpx

    return azid_httpx.AsyncCredential(AzureCliCredential())


def azure_identity() -> Any:
    from azure.identity import AzureCliCredential as AzureIdentityCliCredential

    return AzureIdentityCliCredential()


def _skipped(name: str, exc: BaseException) -> list[str]:
    return [name, "-", "-", "-", f"skipped: {type(exc).__name__}: {exc}"]


def cached_rows(record: str, repeats: int, number: int, azure_calls: int) -> list[list[str]]:
    rows: list[list[str]] = []
    before = spawns(record)
    credential = azid_sync()
    credential.get_token(SCOPE)
    samples = [time_sync(credential.get_token, number) for _ in range(repeats)]
    credential.close()
    azid_ns = statistics.median(samples)
    runs = spawns(record) - before
    rows.append(["azid_requests", f"{azid_ns:,.0f}", f"{repeats * number + 1:,}", str(runs), ""])

    async_number = calls_per_repeat(2000.0, number)

    async def timed_async() -> list[float]:
        credential = azid_async()
        try:
            await credential.get_token(SCOPE)
            return [await time_async(credential.get_token, async_number) for _ in range(repeats)]
        finally:
            await credential.close()

    before = spawns(record)
    async_samples: list[float] = run_async("asyncio", timed_async)
    rows.append(
        [
            "azid_httpx (async, asyncio)",
            f"{statistics.median(async_samples):,.0f}",
            f"{repeats * async_number + 1:,}",
            str(spawns(record) - before),
            "",
        ]
    )
    try:
        azure = azure_identity()
    except Exception as exc:  # not installed: the row says so
        rows.append(_skipped("azure-identity (sync)", exc))
        return rows
    before = spawns(record)
    azure_ns = time_sync(azure.get_token, azure_calls)
    rows.append(
        [
            "azure-identity (sync)",
            f"{azure_ns:,.0f}",
            f"{azure_calls:,}",
            str(spawns(record) - before),
            f"azure-identity / azid_requests = {azure_ns / azid_ns:,.0f}x",
        ]
    )
    return rows


def first_call_ms(make: Callable[[], Any], rounds: int, *, is_async: bool = False) -> float:
    times: list[float] = []
    for _ in range(rounds):
        if is_async:

            async def once() -> float:
                start = time.perf_counter()
                credential = make()
                try:
                    await credential.get_token(SCOPE)
                finally:
                    elapsed = time.perf_counter() - start
                    await credential.close()
                return elapsed

            times.append(run_async("asyncio", once))
        else:
            start = time.perf_counter()
            credential = make()
            credential.get_token(SCOPE)
            times.append(time.perf_counter() - start)
            close = getattr(credential, "close", None)
            if close is not None:
                close()
    return statistics.median(times) * 1000


def first_rows(rounds: int) -> list[list[str]]:
    rows = [
        ["azid_requests", f"{first_call_ms(azid_sync, rounds):.1f}"],
        ["azid_httpx (async, asyncio)", f"{first_call_ms(azid_async, rounds, is_async=True):.1f}"],
    ]
    try:
        azure_identity()
    except Exception as exc:  # not installed
        rows.append(["azure-identity (sync)", f"skipped: {type(exc).__name__}"])
    else:
        rows.append(["azure-identity (sync)", f"{first_call_ms(azure_identity, rounds):.1f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--number", type=int, default=100_000)
    parser.add_argument("--azure-calls", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    guard_network()
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="azid-fake-az-") as directory:
        record = fake_az(directory)
        try:
            cached = cached_rows(record, args.repeats, args.number, args.azure_calls)
            lines += [
                f"AzureCliCredential get_token with a fake az on PATH: median of {args.repeats} repeats",
                "",
                table(["path", "ns/call", "calls", "az runs", ""], cached),
                "",
            ]
            first = first_rows(args.rounds)
            lines += [
                f"first call (construct + first get_token, one az run): median of {args.rounds} rounds",
                "",
                table(["path", "ms"], first),
            ]
        except Exception:
            lines += ["ERROR:", traceback.format_exc()]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
