"""Cached `get_token` cost, in ns per call, for every azid path and for azure-identity.

    python -m benchmarks.cached_token [--repeats 7] [--number 100000]

Each credential first fetches its token from the loopback HTTPS server (the warm-up call); then
`get_token(scope)` is timed in a loop, timeit style (garbage collector off, `itertools.repeat`),
and the median over the repeats is reported. Sync paths are measured round-robin so that machine
noise spreads evenly; each async path is timed inside one event loop. Any token request reaching
the server during the timed loops is reported: it would mean the cache was not hit.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import time
import traceback
from typing import TYPE_CHECKING

from ._common import (
    SCOPE,
    AsyncPath,
    SyncCredential,
    SyncPath,
    async_paths,
    run_async,
    serve,
    sync_paths,
    table,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._common import Bench

SYNC_TARGET_NS = 400.0
ASYNC_TARGET_NS = 2000.0
REPEAT_BUDGET_S = 0.25  # a slow path gets fewer calls per repeat, so the script stays short


def time_sync(get_token: Callable[[str], object], number: int) -> float:
    """ns per call of `number` calls."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in itertools.repeat(None, number):
            get_token(SCOPE)
        elapsed = time.perf_counter_ns() - start
    finally:
        if collecting:
            gc.enable()
    return elapsed / number


async def time_async(get_token: Callable[[str], Awaitable[object]], number: int) -> float:
    collecting = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in itertools.repeat(None, number):
            await get_token(SCOPE)
        elapsed = time.perf_counter_ns() - start
    finally:
        if collecting:
            gc.enable()
    return elapsed / number


def calls_per_repeat(per_call_ns: float, cap: int) -> int:
    return max(100, min(cap, int(REPEAT_BUDGET_S * 1e9 / max(per_call_ns, 1.0))))


class Result:
    def __init__(self, name: str, kind: str, azure_identity: bool) -> None:
        self.name = name
        self.kind = kind  # "sync" or "async"
        self.azure_identity = azure_identity
        self.samples: list[float] = []
        self.number = 0
        self.skip = ""
        self.error = ""  # a traceback: the path failed
        self.leaked_requests = 0

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def measure_sync(bench: Bench, paths: list[SyncPath], repeats: int, cap: int) -> list[Result]:
    results: list[Result] = []
    live: list[tuple[Result, SyncCredential]] = []
    for path in paths:
        result = Result(path.name, "sync", path.azure_identity)
        results.append(result)
        if path.make is None:
            result.skip = path.skip
            continue
        try:
            credential = path.make()
            credential.get_token(SCOPE)  # warm-up: fetches the token over HTTPS
            result.number = calls_per_repeat(time_sync(credential.get_token, 1000), cap)
            time_sync(credential.get_token, result.number)  # warm the timed loop itself
        except Exception:
            result.error = traceback.format_exc()
            continue
        live.append((result, credential))
    for _ in range(repeats):
        for result, credential in live:
            before = bench.emulator.token_requests
            result.samples.append(time_sync(credential.get_token, result.number))
            result.leaked_requests += bench.emulator.token_requests - before
    for _, credential in live:
        credential.close()
    return results


def measure_async(bench: Bench, path: AsyncPath, repeats: int, cap: int) -> Result:
    result = Result(path.name, "async", path.azure_identity)
    make = path.make
    if make is None:
        result.skip = path.skip
        return result

    async def main() -> None:
        credential = make()
        try:
            await credential.get_token(SCOPE)  # warm-up: fetches the token over HTTPS
            result.number = calls_per_repeat(await time_async(credential.get_token, 1000), cap)
            await time_async(credential.get_token, result.number)
            before = bench.emulator.token_requests
            for _ in range(repeats):
                result.samples.append(await time_async(credential.get_token, result.number))
            result.leaked_requests = bench.emulator.token_requests - before
        finally:
            await credential.close()

    try:
        run_async(path.loop, main)
    except Exception:
        result.error = traceback.format_exc()
        result.samples.clear()
    return result


def report(results: list[Result], repeats: int) -> str:
    azure = {r.kind: r for r in results if r.azure_identity and r.samples}
    rows: list[list[str]] = []
    for r in results:
        if not r.samples:
            rows.append([r.name, "ERROR" if r.error else "skipped", "", "", "", ""])
            continue
        target = SYNC_TARGET_NS if r.kind == "sync" else ASYNC_TARGET_NS
        if r.azure_identity:
            verdict, versus = "", "(reference)"
        else:
            verdict = f"<= {target:.0f}: {'ok' if r.median <= target else 'MISSED'}"
            other = azure.get(r.kind)
            versus = f"{other.median / r.median:.1f}x" if other else "n/a"
        spread = f"{min(r.samples):.0f}-{max(r.samples):.0f}"
        rows.append([r.name, f"{r.median:.0f}", spread, f"{r.number}", verdict, versus])
    header = ["path", "ns/call (median)", "min-max", "calls/repeat", "target ns", "azure-identity / azid"]
    lines = [
        f"cached get_token: median of {repeats} repeats, one event loop per async path, gc off while timing",
        "",
        table(header, rows),
    ]
    notes = [f"  {r.name}: skipped: {r.skip}" for r in results if r.skip]
    leaks = [f"  {r.name}: {r.leaked_requests} token requests" for r in results if r.leaked_requests]
    if notes:
        lines += ["", "skipped paths:", *notes]
    for r in results:
        if r.error:
            lines += ["", f"ERROR in {r.name}:", r.error.rstrip()]
    if leaks:
        lines += ["", "WARNING: the server saw token requests while cached calls were timed:", *leaks]
    else:
        lines += ["", "the server saw no token request during any timed loop (every call was a cache hit)"]
    lines.append(
        "azure-identity / azid compares like with like: sync rows with azure-identity sync, async rows with "
        "azure-identity async (n/a when that was skipped)."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--number", type=int, default=100_000, help="calls per repeat, at most")
    args = parser.parse_args()
    with serve() as bench:
        results = measure_sync(bench, sync_paths(bench.url), args.repeats, args.number)
        for path in async_paths(bench.url):
            results.append(measure_async(bench, path, args.repeats, args.number))
    print(report(results, args.repeats))


if __name__ == "__main__":
    main()
