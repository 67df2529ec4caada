"""Cold first-token time against the loopback HTTPS server, per path, versus bare stdlib.

    python -m benchmarks.cold_token [--rounds 1001]

One server serves every path, from a child process (`serve(apart=True)`) so that its work never
takes a turn at this process's GIL. A round measures each path once, in a shuffled order: construct a
fresh core credential and a fresh adapter (so a fresh session or client, a new TCP connection and a
full TLS handshake) and time construction plus the first `get_token`; closing it is not timed. Async
paths get a fresh event loop per measurement, whose start-up is not timed. The baseline is the
least a hand-written client must do for one token: build an `ssl` context trusting the CA,
open an `http.client.HTTPSConnection`, POST the same form to the same token URL, and
`json.loads` the reply. One untimed round first does every import and lazy initialisation.

"The same POST" is azid's own token request, taken from its flow before the first round: the same
URL, the same headers (User-Agent, both request-id headers, Accept, Content-Type), the same form
fields, which each library encodes itself (`data=`), as its users write it (urlencode for the
stdlib and h11 rows), and the same deadlines (30 s, 10 s to connect), each bounded the way its
library offers: requests' and httpx's `timeout=`, the stdlib's socket timeout, and for h11, which
has none, a trio cancel scope. A request id is fixed there, fresh per request in azid.

Samples vary by 15-20 % (interquartile range) on a busy two-core machine, so that two runs of the
same library alone differed by up to 3 % at 101 rounds and 1.5 % at 301: the default is 1001 rounds
(about a minute; the heap is frozen after the untimed round, so the collection before each sample
is cheap). Ratios are given on the medians (the target), on the minimums (the least-disturbed
runs) and paired (the median of each round's ratio).

Each HTTP library azid runs on also makes the same POST alone, with a fresh session or client and
no azid code ("requests Session alone", ...; for azid_trio, h11 over trio's TCP and TLS streams). The
target is on the "vs its library" column, an adapter's median over its library's: each adapter costs
at most 1.05x its own library making the same POST alone. A user who picks an adapter has picked its
library; what azid adds is the gap. The stdlib row is the floor under every library, and
azure-identity's rows stand beside azid's for comparison.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import ssl
import statistics
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit

from ._common import (
    SCOPE,
    AsyncPath,
    SyncPath,
    async_paths,
    core,
    first_request,
    freeze_heap,
    run_async,
    serve,
    shuffled_rounds,
    sync_paths,
    table,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._common import Bench

TARGET_RATIO = 1.05  # each adapter over its own library alone


class Post(NamedTuple):
    """azid's token request, for the rows that make it without azid."""

    url: str
    headers: dict[str, str]
    fields: dict[str, str]
    timeout: float  # seconds for the whole request
    connect_timeout: float


def azid_post(bench: Bench) -> Post:
    """The token POST azid makes for `core(bench.url)`, with its form fields."""
    request = first_request(core(bench.url), bench.emulator)
    fields = dict(parse_qsl(request.body.decode("ascii"), strict_parsing=True))
    if urlencode(fields).encode("ascii") != request.body:  # what the libraries send must be azid's form
        raise RuntimeError("the form does not re-encode to azid's body")
    connect_timeout = request.connect_timeout or request.timeout
    return Post(request.url, dict(request.headers), fields, request.timeout, connect_timeout)


def stdlib_token(post: Post, ca_file: str) -> str:
    """One token with nothing but the standard library: the baseline."""
    parts = urlsplit(post.url)
    context = ssl.create_default_context(cafile=ca_file)
    connection = http.client.HTTPSConnection(
        parts.hostname or "", parts.port, context=context, timeout=post.timeout
    )
    try:
        connection.request("POST", parts.path, body=urlencode(post.fields), headers=post.headers)
        response = connection.getresponse()
        reply = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"stdlib baseline: HTTP {response.status}: {reply}")
        token: str = reply["access_token"]
        return token
    finally:
        connection.close()


@dataclass
class Path:
    name: str
    measure: Callable[[], float] | None  # seconds for construction + first get_token
    skip: str = ""
    azure_identity: bool = False
    baseline: bool = False
    library: bool = False  # an HTTP library alone, no azid: no target, not compared with azure-identity
    given_client: bool = False  # azid on a client the caller made (and timed with it)
    is_async: bool = False
    error: str = ""
    samples: list[float] = field(default_factory=list)
    requests: int = 0  # HTTP requests the server answered while this path ran

    @property
    def is_azid(self) -> bool:
        return not (self.azure_identity or self.baseline or self.library)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def baseline_path(bench: Bench, post: Post) -> Path:
    def measure() -> float:
        start = time.perf_counter()
        stdlib_token(post, bench.ca_file)
        return time.perf_counter() - start

    return Path("stdlib http.client + json (baseline)", measure, baseline=True)


# Which library-alone row each azid path runs on: azid's own cost is the gap between the two.
REQUESTS_ALONE = "requests Session alone"
HTTPX_ALONE = "httpx Client alone"
HTTPX_ASYNC_ALONE = "httpx AsyncClient alone, {loop}"
H11_TRIO_ALONE = "h11 on trio streams alone"
LIBRARY_OF = {
    "azid_requests": REQUESTS_ALONE,
    "azid_httpx (sync)": HTTPX_ALONE,
    "azid_httpx (async, asyncio)": HTTPX_ASYNC_ALONE.format(loop="asyncio"),
    "azid_httpx (async, trio)": HTTPX_ASYNC_ALONE.format(loop="trio"),
    "azid_httpx given an AsyncClient, asyncio": HTTPX_ASYNC_ALONE.format(loop="asyncio"),
    "azid_httpx given an AsyncClient, trio": HTTPX_ASYNC_ALONE.format(loop="trio"),
    "azid_trio (trio)": H11_TRIO_ALONE,
}


async def h11_on_trio(
    method: str,
    url: str,
    headers: dict[str, str],
    fields: dict[str, str] | None = None,
    *,
    timeout: float,
) -> float:
    """Seconds for one request with h11 over trio's TCP stream (and TLS stream, for https), as
    azid_trio makes it, and no azid code, up to the reply's access token, within `timeout` (trio's
    way: one cancel scope). `fields` are sent as a form, encoded on the clock as requests and httpx
    encode `data=`. The stream is closed after the clock stops, as the other rows close their
    clients (azid_trio keeps it until `close`)."""
    import h11
    import trio

    start = time.perf_counter()
    body = urlencode(fields).encode("ascii") if fields else b""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    streams: list[trio.abc.Stream] = []
    received = bytearray()
    with trio.move_on_after(timeout) as deadline:
        stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        streams.append(stream)
        if parts.scheme == "https":
            stream = trio.SSLStream(
                stream,
                ssl.create_default_context(),  # SSL_CERT_FILE, as azid_trio's default trust
                server_hostname=host,
                https_compatible=True,
            )
            streams.append(stream)
        connection = h11.Connection(h11.CLIENT)
        head = [("Host", f"{host}:{port}"), *headers.items()]
        if body or method == "POST":
            head.append(("Content-Length", str(len(body))))
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        events: list[h11.Request | h11.Data | h11.EndOfMessage] = [
            h11.Request(method=method, target=target, headers=head)
        ]
        if body:
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        await stream.send_all(b"".join(connection.send(event) or b"" for event in events))
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(bytes(await stream.receive_some(65536)))
            elif isinstance(event, h11.Data):
                received += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
    if deadline.cancelled_caught:
        raise TimeoutError(f"h11 on trio: no reply within {timeout} s")
    json.loads(received)["access_token"]
    elapsed = time.perf_counter() - start
    await trio.aclose_forcefully(streams[-1])
    return elapsed


def library_paths(post: Post) -> list[Path]:
    """The same POST made by each HTTP library azid runs on, with no azid code: the floor under each
    adapter. Each builds a fresh session or client, as the adapters do."""
    import httpx
    import requests

    url, headers, fields, timeout, connect_timeout = post
    timeouts = httpx.Timeout(timeout, connect=connect_timeout)

    def with_requests() -> float:
        start = time.perf_counter()
        session = requests.Session()
        reply = session.post(url, data=fields, headers=headers, timeout=(connect_timeout, timeout))
        json.loads(reply.content)["access_token"]
        elapsed = time.perf_counter() - start
        session.close()
        return elapsed

    def with_httpx() -> float:
        start = time.perf_counter()
        client = httpx.Client()
        reply = client.post(url, data=fields, headers=headers, timeout=timeouts)
        json.loads(reply.content)["access_token"]
        elapsed = time.perf_counter() - start
        client.close()
        return elapsed

    async def with_httpx_async() -> float:
        start = time.perf_counter()
        client = httpx.AsyncClient()
        reply = await client.post(url, data=fields, headers=headers, timeout=timeouts)
        json.loads(reply.content)["access_token"]
        elapsed = time.perf_counter() - start
        await client.aclose()
        return elapsed

    async def with_h11_on_trio() -> float:
        return await h11_on_trio("POST", url, headers, fields, timeout=timeout)

    def on(loop: str, timed: Callable[[], Any]) -> Callable[[], float]:
        def measure() -> float:
            elapsed: float = run_async(loop, timed)
            return elapsed

        return measure

    return [
        Path(REQUESTS_ALONE, with_requests, library=True),
        Path(HTTPX_ALONE, with_httpx, library=True),
        *(
            Path(HTTPX_ASYNC_ALONE.format(loop=loop), on(loop, with_httpx_async), library=True)
            for loop in ("asyncio", "trio")
        ),
        Path(H11_TRIO_ALONE, on("trio", with_h11_on_trio), library=True),
    ]


def given_client_paths(bench: Bench) -> list[Path]:
    """azid_httpx's AsyncCredential handed an `httpx.AsyncClient`: azid on httpx's own async stack."""
    import httpx

    import azid_httpx

    async def timed() -> float:
        start = time.perf_counter()
        client = httpx.AsyncClient()
        credential = azid_httpx.AsyncCredential(core(bench.url), client)
        await credential.get_token(SCOPE)
        elapsed = time.perf_counter() - start
        await client.aclose()
        return elapsed

    def on(loop: str) -> Path:
        def measure() -> float:
            elapsed: float = run_async(loop, timed)
            return elapsed

        return Path(f"azid_httpx given an AsyncClient, {loop}", measure, is_async=True, given_client=True)

    return [on("asyncio"), on("trio")]


def from_sync(path: SyncPath) -> Path:
    make = path.make
    if make is None:
        return Path(path.name, None, path.skip, path.azure_identity)

    def measure() -> float:
        start = time.perf_counter()
        credential = make()
        credential.get_token(SCOPE)
        elapsed = time.perf_counter() - start
        credential.close()
        return elapsed

    return Path(path.name, measure, azure_identity=path.azure_identity)


def from_async(path: AsyncPath) -> Path:
    make = path.make
    if make is None:
        return Path(path.name, None, path.skip, path.azure_identity, is_async=True)

    async def timed() -> float:
        start = time.perf_counter()
        credential = make()
        await credential.get_token(SCOPE)
        elapsed = time.perf_counter() - start
        await credential.close()
        return elapsed

    def measure() -> float:
        elapsed: float = run_async(path.loop, timed)
        return elapsed

    return Path(path.name, measure, azure_identity=path.azure_identity, is_async=True)


def run_once(bench: Bench, path: Path, record: bool) -> None:
    if path.measure is None or path.error:
        return
    gc.collect()
    served = bench.handler.served
    try:
        elapsed = path.measure()
    except Exception:
        path.error = traceback.format_exc()
        path.samples.clear()
        return
    if record:
        path.samples.append(elapsed)
        path.requests += bench.handler.served - served


def report(paths: list[Path], rounds: int) -> str:
    base = next(p for p in paths if p.baseline)
    by_name = {p.name: p for p in paths}
    rows: list[list[str]] = []
    for p in paths:
        if not p.samples:
            rows.append([p.name, "ERROR" if p.error else "skipped", *[""] * 9])
            continue
        row = [p.name, f"{p.median * 1000:.2f}", f"{min(p.samples) * 1000:.2f}"]
        row.append(f"{max(p.samples) * 1000:.2f}")
        if base.samples:
            row += [f"{p.median / base.median:.2f}x", f"{min(p.samples) / min(base.samples):.2f}x"]
        else:
            row += ["n/a", "n/a"]
        library = by_name.get(LIBRARY_OF.get(p.name, ""))
        versus, versus_min, paired = None, "", ""
        if library is not None and library.samples:
            versus = p.median / library.median
            versus_min = f"{min(p.samples) / min(library.samples):.2f}x"
            # One sample of each per round, minutes apart at most: the median of the per-round
            # ratios cancels the machine's drift between rounds.
            ratios = [a / b for a, b in zip(p.samples, library.samples, strict=True)]
            paired = f"{statistics.median(ratios):.2f}x"
        row += ["" if versus is None else f"{versus:.2f}x", versus_min, paired]
        row.append(f"{p.requests / len(p.samples):g}")
        if not p.is_azid:
            row.append("")
        elif versus is None:
            row.append("no library row")
        else:
            row.append(f"<= {TARGET_RATIO}x: {'ok' if versus <= TARGET_RATIO else 'MISSED'}")
        rows.append(row)
    header = ["path", "median ms", "min ms", "max ms", "vs stdlib", "vs stdlib (min)"]
    header += ["vs its library", "(min)", "(paired)", "HTTP reqs", "target"]
    lines = [
        f"cold first token (construct + first get_token, new TLS connection): {rounds} rounds",
        f"target: each adapter <= {TARGET_RATIO}x its own library making the same POST alone (medians)",
        "",
        table(header, rows),
    ]
    for is_async in (False, True):  # sync azid against sync azure-identity, async against async
        azure = next((p for p in paths if p.azure_identity and p.is_async == is_async and p.samples), None)
        azid = [p for p in paths if p.samples and p.is_async == is_async and p.is_azid and not p.given_client]
        if azure is not None and azid:
            lines += ["", f"{azure.name} / azid (medians):"]
            lines += [f"  {p.name}: {azure.median / p.median:.2f}x" for p in azid]
    skipped = [f"  {p.name}: skipped: {p.skip}" for p in paths if p.skip]
    if skipped:
        lines += ["", "skipped paths:", *skipped]
    for p in paths:
        if p.error:
            lines += ["", f"ERROR in {p.name}:", p.error.rstrip()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=1001)
    args = parser.parse_args()
    with serve(apart=True) as bench:
        post = azid_post(bench)
        paths = [baseline_path(bench, post), *library_paths(post), *given_client_paths(bench)]
        paths += [from_sync(p) for p in sync_paths(bench.url)]
        paths += [from_async(p) for p in async_paths(bench.url)]
        # baseline, libraries, azid, azid on a given client, azure-identity
        paths.sort(key=lambda p: (p.azure_identity, p.is_azid, p.given_client))
        for path in paths:  # untimed: imports, lazy modules, the server's first JWT
            run_once(bench, path, record=False)
        freeze_heap()
        for order in shuffled_rounds(paths, args.rounds):
            for path in order:
                run_once(bench, path, record=True)
    print(report(paths, args.rounds))


if __name__ == "__main__":
    main()
