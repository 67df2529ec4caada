"""Import time: a whole `python -c "<statement>"` process minus a `python -c "pass"` process.

    python -m benchmarks.import_time [--runs 21]

Every statement runs in a fresh interpreter (the one running this script), from the repository
root, `--runs` times. The runs are interleaved: each round runs every statement once, in a
shuffled order, so that machine noise lands on all of them alike. Reported: the median process
time, and that median minus the median of `pass`. Each statement runs once untimed first, which
also writes the bytecode caches; a statement that fails then is reported as skipped.

Bytecode caches: the children run with PYTHONDONTWRITEBYTECODE unset and PYTHONPYCACHEPREFIX set to
a temporary directory, so every module (azid's and site-packages' alike) loads from a cache written
by that untimed run, as an installed package would, and nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.certs import leaf

from ._common import table

ROOT = Path(__file__).resolve().parent.parent
CORE_TARGET_MS = 15.0


@dataclass
class Row:
    label: str
    statement: str
    probe: str = ""  # what must succeed for the row to be measured (default: the statement)
    versus: str = ""  # label of the azure-identity row this one is compared with
    target_ms: float | None = None
    reference: bool = False  # not azid: for context only
    skip: str = ""
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


AZ_MODULE = "import azure.identity"
AZ_CLASS = "from azure.identity import ClientSecretCredential"
# Import plus construction from a PEM file (key and certificate) that main() writes: azid reads the
# file at the first token request, azure-identity reads and parses it in the constructor.
CERT_ARGS = "('tenant', 'client', os.environ['AZID_BENCH_CERTIFICATE'])"
AZ_CERT = "azure-identity CertificateCredential(path)"

ROWS = [
    Row("pass", "pass"),
    Row("import azid_core", "import azid_core", versus=AZ_MODULE, target_ms=CORE_TARGET_MS),
    Row(
        "from azid_core import ClientSecretCredential",
        "from azid_core import ClientSecretCredential",
        versus=AZ_CLASS,
    ),
    Row("import azid_requests", "import azid_requests", versus=AZ_CLASS),
    Row("import azid_httpx", "import azid_httpx", versus=AZ_CLASS),
    Row(
        "import azid_trio",
        "import azid_trio",
        # A directory without __init__.py imports as an empty namespace package: not the adapter.
        probe="import azid_trio; azid_trio.Credential",
        versus=AZ_CLASS,
    ),
    Row(
        "ClientSecretCredential + azid_requests",
        "from azid_core import ClientSecretCredential; import azid_requests",
        versus=AZ_CLASS,
    ),
    Row(
        "CertificateCredential(path)",
        f"import os; from azid_core import CertificateCredential; CertificateCredential{CERT_ARGS}",
        versus=AZ_CERT,
    ),
    Row("import requests  (reference)", "import requests", reference=True),
    Row("import httpx  (reference)", "import httpx", reference=True),
    Row("import trio, h11  (reference)", "import trio, h11", reference=True),
    Row(AZ_MODULE, AZ_MODULE, reference=True),
    Row(AZ_CLASS, AZ_CLASS, reference=True),
    Row(
        AZ_CERT,
        f"import os; from azure.identity import CertificateCredential; CertificateCredential{CERT_ARGS}",
        reference=True,
    ),
]


ENV: dict[str, str] = {}


def run(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", statement],
        cwd=ROOT,
        env=ENV,
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def probe(row: Row) -> None:
    done = subprocess.run(
        [sys.executable, "-c", row.probe or row.statement],
        cwd=ROOT,
        env=ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        row.skip = lines[-1] if lines else f"exit status {done.returncode}"


def report(rows: list[Row], runs: int) -> str:
    bare = rows[0].median
    by_label = {row.label: row for row in rows}
    table_rows: list[list[str]] = []
    for row in rows:
        if row.skip:
            table_rows.append([row.label, "skipped", "", "", ""])
            continue
        over = (row.median - bare) * 1000
        target = ""
        if row.target_ms is not None:
            target = f"<= {row.target_ms:.0f}: {'ok' if over <= row.target_ms else 'MISSED'}"
        versus = ""
        other = by_label.get(row.versus)
        if other is not None and not other.skip:
            other_over = (other.median - bare) * 1000
            # Under 1 ms the difference of two noisy medians says little: only a lower bound.
            versus = f"{other_over / over:.1f}x" if over >= 1.0 else f"> {other_over:.0f}x"
        process = f"{row.median * 1000:.1f}"
        table_rows.append([row.label, process, "" if row is rows[0] else f"{over:.1f}", target, versus])
    header = ["statement", "process ms (median)", "over bare python ms", "target ms", "azure-identity / azid"]
    lines = [f"import time: median of {runs} interleaved runs per statement, {sys.executable}", ""]
    lines.append(table(header, table_rows))
    lines += [
        "",
        f"azure-identity / azid: 'import azid_core' is compared with '{AZ_MODULE}',",
        f"the certificate row with '{AZ_CERT}',",
        f"every other azid row with '{AZ_CLASS}' (time over bare python, both sides).",
        "Certificate rows construct from a PEM file: azure-identity parses it there, azid at the first",
        "token request.",
    ]
    skipped = [f"  {row.label}: skipped: {row.skip}" for row in rows if row.skip]
    if skipped:
        lines += ["", "skipped:", *skipped]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="azid-bench-pycache-") as cache:
        ENV.update(os.environ)
        certificate = Path(cache) / "client.pem"
        certificate.write_bytes(leaf().pem())
        ENV["AZID_BENCH_CERTIFICATE"] = str(certificate)
        ENV.pop("PYTHONDONTWRITEBYTECODE", None)
        ENV["PYTHONPYCACHEPREFIX"] = cache
        for row in ROWS:
            probe(row)
            if not row.skip:
                run(row.statement)  # a second untimed run: the caches are in place now
        live = [row for row in ROWS if not row.skip]
        shuffler = random.Random(1)
        for _ in range(args.runs):
            order = live[:]
            shuffler.shuffle(order)
            for row in order:
                row.samples.append(run(row.statement))
    print(report(ROWS, args.runs))


if __name__ == "__main__":
    main()
