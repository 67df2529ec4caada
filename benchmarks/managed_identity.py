"""Managed identity: the probe's verdict on a refused endpoint, the cached token, the cold token.

    python -m benchmarks.managed_identity [--rounds 41] [--cold-rounds 301] [--repeats 7] [--number 100000]

Everything talks to 127.0.0.1 only: the IMDS endpoint is `azid_core.testing.ManagedIdentityEmulator`
on a loopback HTTP server (IMDS is plain HTTP), or a closed loopback port.

- probe: a fresh `ManagedIdentityCredential(imds_endpoint=<closed port>, imds_probe=True)` per
  sample; the time until `get_token` raises CredentialUnavailableError (target <= 50 ms), and the
  time of the next call, which the remembered failure answers with no I/O.
- cached: `get_token` with the token cached, ns per call as `benchmarks.cached_token` measures it
  (target <= 400 ns sync, <= 2 us async); azure-identity's ManagedIdentityCredential beside it.
- cold: a fresh core credential and adapter per sample, construction plus the first `get_token`
  (one GET); each HTTP library making the same GET alone with a fresh client is the floor under its
  adapter ("vs its library", target <= 1.05x); the stdlib row is the floor of all.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import socket
import statistics
import time
import traceback
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from azid_core import CredentialUnavailableError, ManagedIdentityCredential
from azid_core.testing.managed_identity import IMDS_BASE, PATHS, ManagedIdentityEmulator
from tests.loopback import LoopbackServer, guard_network

from ._common import first_request, freeze_heap, run_async, shuffled_rounds, table
from .cached_token import calls_per_repeat, time_async, time_sync
from .cold_token import h11_on_trio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from azid_core.acquire import TokenSource
    from azid_core.effects import HttpRequest

SCOPE = "https://vault.azure.net/.default"
PROBE_TARGET_MS = 50.0
CACHED_TARGET_NS = {"sync": 400.0, "async": 2000.0}
COLD_TARGET = 1.05


@contextmanager
def imds() -> Iterator[tuple[str, ManagedIdentityEmulator]]:
    """The emulator's IMDS on a loopback HTTP server; every proxy variable cleared."""
    guard_network()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        os.environ.pop(name, None)
    emulator = ManagedIdentityEmulator(clock=time.time)
    with LoopbackServer(emulator, tls=False) as server:
        yield f"{server.url}{IMDS_BASE}", emulator


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the adapters, each wrapping a fresh core credential --


def adapters() -> list[tuple[str, str | None, Callable[[TokenSource], Any]]]:
    """(name, event loop or None for sync, factory) for every azid path."""
    import importlib

    import azid_httpx
    import azid_requests

    trio_credential = importlib.import_module("azid_trio").Credential
    return [
        ("azid_requests", None, azid_requests.Credential),
        ("azid_httpx (sync)", None, azid_httpx.Credential),
        ("azid_httpx (async, asyncio)", "asyncio", azid_httpx.AsyncCredential),
        ("azid_httpx (async, trio)", "trio", azid_httpx.AsyncCredential),
        ("azid_trio (trio)", "trio", trio_credential),
    ]


def one_call(loop: str | None, make: Callable[[], Any], call: Callable[[Any], Any]) -> float:
    """Seconds for `call(credential)` on a fresh credential (construction included), sync or async."""
    if loop is None:
        start = time.perf_counter()
        credential = make()
        try:
            call(credential)
        finally:
            elapsed = time.perf_counter() - start
            credential.close()
        return elapsed

    async def timed() -> float:
        start = time.perf_counter()
        credential = make()
        try:
            await call(credential)
        finally:
            elapsed = time.perf_counter() - start
            await credential.close()
        return elapsed

    result: float = run_async(loop, timed)
    return result


# -- probe --


def probe_rows(rounds: int) -> list[list[str]]:
    port = closed_port()

    def core() -> ManagedIdentityCredential:
        return ManagedIdentityCredential(imds_endpoint=f"http://127.0.0.1:{port}", imds_probe=True, env={})

    rows = []
    for name, loop, wrap in adapters():
        first: list[float] = []
        again: list[float] = []
        for _ in range(rounds):
            credential = core()
            first.append(refusal_time(loop, wrap, credential))
            # The same core credential again: the failure is remembered, so no effect at all.
            again.append(refusal_time(loop, wrap, credential))
        verdict = statistics.median(first) * 1000
        rows.append(
            [
                name,
                f"{verdict:.2f}",
                f"{max(first) * 1000:.2f}",
                f"{statistics.median(again) * 1e6:.0f}",
                f"<= {PROBE_TARGET_MS:.0f}: {'ok' if verdict <= PROBE_TARGET_MS else 'MISSED'}",
            ]
        )
    return rows


def refusal_time(loop: str | None, wrap: Callable[[TokenSource], Any], core: TokenSource) -> float:
    """Seconds until a fresh adapter over `core` says the endpoint is unavailable."""
    return one_call(loop, lambda: wrap(core), lambda credential: expect_unavailable(loop, credential))


def expect_unavailable(loop: str | None, credential: Any) -> Any:
    if loop is None:
        try:
            credential.get_token(SCOPE)
        except CredentialUnavailableError:
            return None
        raise AssertionError("the refused endpoint gave a token")

    async def refused() -> None:
        try:
            await credential.get_token(SCOPE)
        except CredentialUnavailableError:
            return
        raise AssertionError("the refused endpoint gave a token")

    return refused()


# -- cached --


def cached_rows(endpoint: str, emulator: ManagedIdentityEmulator, repeats: int, cap: int) -> list[list[str]]:
    rows: list[list[str]] = []
    results: dict[str, float] = {}
    for name, loop, wrap in adapters():
        credential = wrap(ManagedIdentityCredential(imds_endpoint=endpoint, env={}))
        before = emulator.issued
        if loop is None:
            credential.get_token(SCOPE)
            number = calls_per_repeat(time_sync(credential.get_token, 1000), cap)
            time_sync(credential.get_token, number)  # untimed: warms the loop, as cached_token does
            samples = [time_sync(credential.get_token, number) for _ in range(repeats)]
            credential.close()
        else:

            async def main(credential: Any = credential) -> list[float]:
                await credential.get_token(SCOPE)
                number = calls_per_repeat(await time_async(credential.get_token, 1000), cap)
                await time_async(credential.get_token, number)  # untimed warm-up
                found = [await time_async(credential.get_token, number) for _ in range(repeats)]
                await credential.close()
                return found

            samples = run_async(loop, main)
        assert emulator.issued - before == 1, "the cached loop sent a token request"
        kind = "sync" if loop is None else "async"
        results[name] = statistics.median(samples)
        target = CACHED_TARGET_NS[kind]
        verdict = "ok" if results[name] <= target else "MISSED"
        rows.append([name, f"{results[name]:.0f}", f"<= {target:.0f}: {verdict}", ""])
    azure = azure_identity_cached(endpoint, repeats, cap)
    if azure is not None:
        rows.append(["azure-identity ManagedIdentityCredential (sync)", f"{azure:.0f}", "", "(reference)"])
        for row in rows[:2]:
            row[3] = f"{azure / results[row[0]]:.1f}x"
    return rows


def azure_identity_cached(endpoint: str, repeats: int, cap: int) -> float | None:
    try:
        from azure.identity import ManagedIdentityCredential as AzureManagedIdentityCredential
    except ImportError:
        return None
    # azure-identity's IMDS credential takes its endpoint from AZURE_POD_IDENTITY_AUTHORITY_HOST.
    os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = endpoint
    try:
        credential = AzureManagedIdentityCredential()
        credential.get_token(SCOPE)
        number = calls_per_repeat(time_sync(credential.get_token, 1000), cap)
        return statistics.median(time_sync(credential.get_token, number) for _ in range(repeats))
    finally:
        del os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"]


# -- cold --


def library_gets(request: HttpRequest) -> dict[str, Callable[[], float]]:
    """azid's IMDS token GET (its URL and headers) made by each library alone, with a fresh client:
    the floor under each adapter. Keyed by the adapter each one is the floor of."""
    import httpx
    import requests

    url, headers = request.url, dict(request.headers)
    # azid's deadlines, bounded the way each library offers (cold_token's docstring).
    timeout, connect_timeout = request.timeout, request.connect_timeout or request.timeout
    timeouts = httpx.Timeout(timeout, connect=connect_timeout)

    def with_stdlib() -> float:
        parts = urlsplit(url)
        start = time.perf_counter()
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
        connection.request("GET", f"{parts.path}?{parts.query}", headers=headers)
        json.loads(connection.getresponse().read())["access_token"]
        elapsed = time.perf_counter() - start
        connection.close()
        return elapsed

    def with_requests() -> float:
        start = time.perf_counter()
        session = requests.Session()
        reply = session.get(url, headers=headers, timeout=(connect_timeout, timeout))
        json.loads(reply.content)["access_token"]
        elapsed = time.perf_counter() - start
        session.close()
        return elapsed

    def with_httpx() -> float:
        start = time.perf_counter()
        client = httpx.Client()
        json.loads(client.get(url, headers=headers, timeout=timeouts).content)["access_token"]
        elapsed = time.perf_counter() - start
        client.close()
        return elapsed

    async def with_httpx_async() -> float:
        start = time.perf_counter()
        client = httpx.AsyncClient()
        reply = await client.get(url, headers=headers, timeout=timeouts)
        json.loads(reply.content)["access_token"]
        elapsed = time.perf_counter() - start
        await client.aclose()
        return elapsed

    async def with_h11_on_trio() -> float:
        return await h11_on_trio("GET", url, headers, timeout=timeout)

    def on(loop: str, timed: Callable[[], Awaitable[float]]) -> Callable[[], float]:
        return lambda: cast("float", run_async(loop, timed))

    return {
        "stdlib http.client + json (floor)": with_stdlib,
        "azid_requests": with_requests,
        "azid_httpx (sync)": with_httpx,
        "azid_httpx (async, asyncio)": on("asyncio", with_httpx_async),
        "azid_httpx (async, trio)": on("trio", with_httpx_async),
        "azid_trio (trio)": on("trio", with_h11_on_trio),
    }


def cold_rows(endpoint: str, emulator: ManagedIdentityEmulator, rounds: int) -> list[list[str]]:
    request = first_request(ManagedIdentityCredential(imds_endpoint=endpoint, env={}), emulator)
    if not request.url.startswith(f"{endpoint.removesuffix(IMDS_BASE)}{PATHS['imds']}?"):
        raise RuntimeError(f"not an IMDS token request: {request!r}")
    floors = library_gets(request)
    measures: dict[str, Callable[[], float]] = {}
    for name, loop, wrap in adapters():

        def measure(loop: str | None = loop, wrap: Callable[[TokenSource], Any] = wrap) -> float:
            def make() -> Any:
                return wrap(ManagedIdentityCredential(imds_endpoint=endpoint, env={}))

            def fetch(credential: Any) -> Any:
                return credential.get_token(SCOPE)

            return one_call(loop, make, fetch)

        measures[name] = measure
    azure = azure_identity_cold(endpoint)
    if azure is not None:
        measures["azure-identity ManagedIdentityCredential (sync)"] = azure
    libraries = {f"{name}: library alone": floor for name, floor in floors.items() if name in measures}
    everything = {"stdlib": floors["stdlib http.client + json (floor)"], **libraries, **measures}
    samples: dict[str, list[float]] = {name: [] for name in everything}
    for function in everything.values():  # untimed: imports and lazy set-up
        function()
    freeze_heap()
    names = list(everything)
    for order in shuffled_rounds(names, rounds):
        for name in order:
            gc.collect()  # a collection inside a sample would be noise
            samples[name].append(everything[name]())
    medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    rows = []
    for name in names:
        row = [name, f"{medians[name]:.2f}", f"{medians[name] / medians['stdlib']:.2f}x", "", ""]
        library = medians.get(f"{name}: library alone")
        if library is not None:
            versus = medians[name] / library
            row[3] = f"{versus:.2f}x"
            row[4] = f"<= {COLD_TARGET}x: {'ok' if versus <= COLD_TARGET else 'MISSED'}"
        rows.append(row)
    return rows


def azure_identity_cold(endpoint: str) -> Callable[[], float] | None:
    try:
        from azure.identity import ManagedIdentityCredential as AzureManagedIdentityCredential
    except ImportError:
        return None

    def measure() -> float:
        os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = endpoint
        try:
            start = time.perf_counter()
            credential = AzureManagedIdentityCredential()
            credential.get_token(SCOPE)
            elapsed = time.perf_counter() - start
            credential.close()
            return elapsed
        finally:
            del os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"]

    return measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=41)
    # A cold token is a few milliseconds; the machine's noise needs hundreds of samples to average
    # out of a 5 % comparison.
    parser.add_argument("--cold-rounds", type=int, default=301)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--number", type=int, default=100_000)
    args = parser.parse_args()
    lines: list[str] = []
    try:
        probe = probe_rows(args.rounds)
        lines += [
            f"probe of a refused IMDS endpoint (imds_probe=True): median of {args.rounds}",
            "",
            table(["path", "verdict ms", "max ms", "remembered, next call us", "target"], probe),
            "",
        ]
        with imds() as (endpoint, emulator):
            cached = cached_rows(endpoint, emulator, args.repeats, args.number)
            lines += [
                f"cached managed-identity get_token: median of {args.repeats} repeats",
                "",
                table(["path", "ns/call", "target", "azure-identity / azid"], cached),
                "",
            ]
            cold = cold_rows(endpoint, emulator, args.cold_rounds)
            lines += [
                "cold managed-identity token (construct + first get_token, one GET): "
                f"{args.cold_rounds} rounds",
                "",
                table(["path", "median ms", "vs stdlib", "vs its library", "target"], cold),
            ]
    except Exception:
        lines += ["ERROR:", traceback.format_exc()]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
