"""Cold first certificate token against the loopback HTTPS server, beside the client secret's.

    python -m benchmarks.cold_certificate [--rounds 41]

Measured as `benchmarks.cold_token` measures (a fresh core credential and adapter per sample, so a
new TLS connection; construction plus the first `get_token`; shuffled rounds after one untimed round
of imports), for each adapter twice: with `ClientSecretCredential`, and with `CertificateCredential`
from a PEM file. The certificate's extra cost is reading and parsing the file and signing one PS256
assertion. azure-identity's two credentials (sync) run beside them, with the same file.
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, cast

from azid_core import CertificateCredential
from tests.certs import leaf

from ._common import CLIENT_ID, TENANT, AsyncPath, SyncPath, core, freeze_heap, serve, shuffled_rounds, table
from .cold_token import Path, azid_post, baseline_path, from_async, from_sync, run_once

if TYPE_CHECKING:
    from collections.abc import Callable

    from azid_core.acquire import TokenSource

    from ._common import AsyncCredential, SyncCredential


def adapter_paths(url: str, certificate: str) -> list[tuple[str, Path, Path]]:
    """Per adapter: (name, its secret path, its certificate path)."""
    import azid_httpx
    import azid_requests

    trio_credential = importlib.import_module("azid_trio").Credential

    def with_certificate() -> TokenSource:
        return CertificateCredential(TENANT, CLIENT_ID, certificate, authority=url)

    def with_secret() -> TokenSource:
        return core(url)

    def pair(name: str, make: Callable[[TokenSource], object], loop: str | None) -> tuple[str, Path, Path]:
        def one(grant: str, source: Callable[[], TokenSource]) -> Path:
            label = f"{name}: {grant}"
            if loop is None:
                return from_sync(SyncPath(label, lambda: cast("SyncCredential", make(source()))))
            return from_async(AsyncPath(label, loop, lambda: cast("AsyncCredential", make(source()))))

        return name, one("secret", with_secret), one("certificate", with_certificate)

    return [
        pair("azid_requests", azid_requests.Credential, None),
        pair("azid_httpx (sync)", azid_httpx.Credential, None),
        pair("azid_httpx (async, asyncio)", azid_httpx.AsyncCredential, "asyncio"),
        pair("azid_httpx (async, trio)", azid_httpx.AsyncCredential, "trio"),
        pair("azid_trio (trio)", trio_credential, "trio"),
    ]


def azure_identity_paths(url: str, certificate: str) -> tuple[str, Path, Path] | None:
    try:
        from azure.identity import CertificateCredential as AzureCertificateCredential
        from azure.identity import ClientSecretCredential as AzureClientSecretCredential
    except ImportError:
        return None
    from ._common import SECRET

    def secret() -> SyncCredential:
        made = AzureClientSecretCredential(
            TENANT, CLIENT_ID, SECRET, authority=url, disable_instance_discovery=True
        )
        return cast("SyncCredential", made)

    def certified() -> SyncCredential:
        made = AzureCertificateCredential(
            TENANT, CLIENT_ID, certificate, authority=url, disable_instance_discovery=True
        )
        return cast("SyncCredential", made)

    name = "azure-identity (sync)"
    return (
        name,
        from_sync(SyncPath(f"{name}: secret", secret, azure_identity=True)),
        from_sync(SyncPath(f"{name}: certificate", certified, azure_identity=True)),
    )


def report(pairs: list[tuple[str, Path, Path]], base: Path, rounds: int) -> str:
    rows: list[list[str]] = []
    for name, secret, certificate in pairs:
        if not (secret.samples and certificate.samples):
            rows.append([name, "ERROR", "", "", "", ""])
            continue
        rows.append(
            [
                name,
                f"{secret.median * 1000:.2f}",
                f"{certificate.median * 1000:.2f}",
                f"+{(certificate.median - secret.median) * 1000:.2f}",
                f"{certificate.median / secret.median:.2f}x",
                f"{certificate.median / base.median:.2f}x",
            ]
        )
    header = ["path", "secret ms", "certificate ms", "certificate extra ms", "cert / secret"]
    header.append("cert vs stdlib")
    lines = [
        f"cold first token, certificate vs secret (construct + first get_token, new TLS): {rounds} rounds",
        f"stdlib http.client POST (secret form) median: {base.median * 1000:.2f} ms",
        "",
        table(header, rows),
    ]
    azure = next((p for n, _, p in pairs if n.startswith("azure-identity") and p.samples), None)
    if azure is not None:
        lines += ["", "azure-identity certificate / azid certificate (medians):"]
        lines += [
            f"  {name}: {azure.median / cert.median:.2f}x"
            for name, _, cert in pairs
            if cert.samples and not name.startswith("azure-identity")
        ]
    for _, *paths in pairs:
        for p in paths:
            if p.error:
                lines += ["", f"ERROR in {p.name}:", p.error.rstrip()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=41)
    args = parser.parse_args()
    pair = leaf()
    with serve() as bench, tempfile.TemporaryDirectory(prefix="azid-bench-cert-") as folder:
        certificate = FilePath(folder) / "client.pem"
        certificate.write_bytes(pair.pem())
        bench.emulator.apps[(TENANT, CLIENT_ID)].add_certificate(pair.cert_pem)
        pairs = adapter_paths(bench.url, str(certificate))
        azure = azure_identity_paths(bench.url, str(certificate))
        if azure is not None:
            pairs.append(azure)
        base = baseline_path(bench, azid_post(bench))
        paths = [base, *(p for _, *both in pairs for p in both)]
        for path in paths:  # untimed: imports, lazy modules, the server's first JWT
            run_once(bench, path, record=False)
        freeze_heap()
        for order in shuffled_rounds(paths, args.rounds):
            for path in order:
                run_once(bench, path, record=True)
    print(report(pairs, base, args.rounds))


if __name__ == "__main__":
    main()
