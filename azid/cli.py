"""The `azid` command line (also `python -m azid`): tokens the way `az account get-access-token` gets
them, the emulator on loopback, `explain()` for this environment, and a JWT decoder.

Exit codes: 0 ok, 1 authentication failed (or the emulator could not start), 2 usage (argparse, a bad
scope or option, a token that is not a JWT). Every error is one line on stderr, never a traceback and
never a secret (azid_core's messages are masked already). While a token is being fetched a progress
line is shown on stderr when it is a terminal, and cleared afterwards.

Tokens go through azid_requests, or azid_httpx when requests is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from azid_core.errors import AzidError, ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from azid_core.acquire import TokenSource
    from azid_core.effects import HttpRequest, HttpResponse
    from azid_core.frontend import CredentialBase

__all__ = ["CREDENTIALS", "main"]

DEFAULT_SCOPE = "https://management.azure.com/.default"
#: The credentials `--credential` can build from the environment alone: name -> azid_core module.
CREDENTIALS = {
    "DefaultAzureCredential": "azid_core.chains",
    "EnvironmentCredential": "azid_core.entra.environment",
    "ManagedIdentityCredential": "azid_core.managed_identity.credential",
    "WorkloadIdentityCredential": "azid_core.entra.federated",
    "AzureCliCredential": "azid_core.devtools.az",
    "AzureDeveloperCliCredential": "azid_core.devtools.azd",
    "AzurePowerShellCredential": "azid_core.devtools.pwsh",
}
_TIME_CLAIMS = ("iat", "nbf", "exp", "auth_time", "xms_tcdt")
OK, FAILED, USAGE = 0, 1, 2
_NEVER = threading.Event()  # `azid emulator` waits on it until Ctrl-C


class _Failed(Exception):
    """A failure the command reports as one line, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _one_line(message: str) -> str:
    """A chain's final error lists its attempts on lines of their own (§6.1): one line here."""
    first, *rest = message.splitlines() or [""]
    return " ".join([first, "; ".join(line.strip() for line in rest)]).strip()


def _utc(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@contextlib.contextmanager
def _progress(stderr: TextIO, what: str) -> Iterator[None]:
    """`azid: <what>...` on stderr while the block runs, only when stderr is a terminal."""
    shown = stderr.isatty()
    if shown:
        stderr.write(f"azid: {what}...")
        stderr.flush()
    try:
        yield
    finally:
        if shown:
            stderr.write("\r\033[K")  # back to the line's start, and clear it
            stderr.flush()


def adapter_credential(core: TokenSource, *, ca_file: str | None = None) -> CredentialBase:
    """`core` behind azid_requests (azid_httpx when requests is absent), trusting only `ca_file` when
    given (this process's own trust, not the environment's)."""
    try:
        import requests
    except ImportError:  # pragma: no cover - CI installs every extra; the fallback is for small installs
        import httpx

        import azid_httpx

        return azid_httpx.Credential(core, httpx.Client(verify=ca_file) if ca_file else None)
    import azid_requests

    session = None
    if ca_file is not None:
        session = requests.Session()
        session.verify = ca_file
        session.trust_env = False  # else REQUESTS_CA_BUNDLE would replace `verify` (and proxies apply)
    return azid_requests.Credential(core, session)


class _NoSource:
    """A stand-in core for an adapter used only to send one request (`fetch`): it never fetches."""

    def __init__(self) -> None:
        from azid_core.cache import TokenCache

        self.token_cache = TokenCache()


def fetch(request: HttpRequest) -> HttpResponse:
    """One request through the adapter's transport (its trust and proxy rules)."""
    credential = adapter_credential(_NoSource())  # type: ignore[arg-type]
    try:
        # The adapters' transport is their `_http`; no token source is involved here.
        return credential._http(request)
    finally:
        credential.close()


# -- azid token --


def _core(name: str) -> TokenSource:
    import importlib

    if name not in CREDENTIALS:
        raise _Failed(f"azid: unknown credential {name!r}; choose one of: {', '.join(CREDENTIALS)}", USAGE)
    cls = getattr(importlib.import_module(CREDENTIALS[name]), name)
    core: TokenSource = cls()  # from the environment; --tenant goes with the request, as az's does
    return core


def _print_token(out: TextIO, scopes: Sequence[str], info: Any, credential: str, output: str) -> None:
    served = info.source or credential
    if output == "json":
        record = {
            "accessToken": info.token,
            "expires_on": info.expires_on,
            "expiresOn": _utc(info.expires_on),
            "refresh_on": info.refresh_on,
            "tokenType": info.token_type,
            "scopes": list(scopes),
            "credential": served,
        }
        out.write(json.dumps(record, indent=2) + "\n")
        return
    out.write(f"token: {info.token}\n")
    out.write(f"expires_on: {info.expires_on} ({_utc(info.expires_on)})\n")
    refresh = "none" if info.refresh_on is None else f"{info.refresh_on} ({_utc(info.refresh_on)})"
    out.write(f"refresh_on: {refresh}\n")
    out.write(f"credential: {served}\n")


def _get_token(
    credential: CredentialBase, scopes: Sequence[str], args: argparse.Namespace, stderr: TextIO
) -> Any:
    options: dict[str, Any] = {}
    if args.tenant:
        options["tenant_id"] = args.tenant
    if args.claims:
        options["claims"] = args.claims
    with _progress(stderr, "getting a token"), credential:
        return credential.get_token_info(*scopes, options=options or None)


def _token(args: argparse.Namespace, out: TextIO, stderr: TextIO) -> int:
    scopes = args.scopes or [DEFAULT_SCOPE]
    if args.emulator:
        return _token_from_emulator(args, scopes, out, stderr)
    core = _core(args.credential)
    info = _get_token(adapter_credential(core), scopes, args, stderr)
    _print_token(out, scopes, info, args.credential, args.output)
    return OK


def _token_from_emulator(args: argparse.Namespace, scopes: Sequence[str], out: TextIO, stderr: TextIO) -> int:
    from azid_core import blocking
    from azid_core.entra.environment import EnvironmentCredential

    from .emulator import emulator_environment, new_emulator
    from .server import EmulatorServer

    with EmulatorServer(new_emulator(clock=blocking.clock), tls=True) as server:
        # The credential reads this mapping, not the process environment: nothing leaks into it.
        core = EnvironmentCredential(env=emulator_environment(server.url, None))
        info = _get_token(adapter_credential(core, ca_file=server.ca_file), scopes, args, stderr)
    _print_token(out, scopes, info, "EnvironmentCredential", args.output)
    return OK


# -- azid explain, decode, emulator --


def _explain(args: argparse.Namespace, out: TextIO, stderr: TextIO) -> int:
    from azid_core.chains import DefaultAzureCredential

    out.write(f"{DefaultAzureCredential().explain()}\n")
    return OK


def _read_token(given: str | None) -> str:
    text = sys.stdin.read() if given in (None, "-") else str(given)
    return text.strip()


def _verify(token: str, header: dict[str, Any], jwks_url: str) -> None:
    import jwt

    from azid_core.effects import HttpRequest

    parts = urlsplit(jwks_url)
    if not (
        parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost"))
    ):
        raise _Failed(f"azid: --jwks must be an https URL, or http on 127.0.0.1: {jwks_url}", USAGE)
    try:
        reply = fetch(HttpRequest("GET", jwks_url, (("Accept", "application/json"),)))
    except AzidError as exc:
        raise _Failed(f"azid: cannot fetch the JWKS: {exc.message}", FAILED) from exc
    if reply.status != 200:
        raise _Failed(f"azid: cannot fetch the JWKS: HTTP {reply.status}", FAILED)
    try:
        keys = jwt.PyJWKSet.from_json(reply.body.decode("utf-8", "replace"))
        key = next((k for k in keys.keys if k.key_id == header.get("kid")), None)
        if key is None:
            raise _Failed(f"azid: signature not verified: no key {header.get('kid')!r} in the JWKS", FAILED)
        jwt.decode(
            token,
            key,
            algorithms=[str(header.get("alg"))],
            options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise _Failed(f"azid: signature not verified: {exc}", FAILED) from exc


def _decode(args: argparse.Namespace, out: TextIO, stderr: TextIO) -> int:
    import jwt

    token = _read_token(args.token)
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise _Failed(f"azid: not a JWT: {exc}", USAGE) from exc
    if args.jwks:
        _verify(token, header, args.jwks)
        verdict = f"signature: verified with {args.jwks}"
    else:
        verdict = "signature: NOT verified (pass --jwks URL to verify it)"
    out.write("header:\n" + json.dumps(header, indent=2) + "\n")
    out.write("claims:\n" + json.dumps(claims, indent=2) + "\n")
    times = [(name, claims[name]) for name in _TIME_CLAIMS if isinstance(claims.get(name), (int, float))]
    if times:
        out.write("times:\n" + "".join(f"  {name}: {_utc(value)}\n" for name, value in times))
    out.write(verdict + "\n")
    return OK


def _emulator(args: argparse.Namespace, out: TextIO, stderr: TextIO, wait: Callable[[], object]) -> int:
    from azid_core import blocking

    from .emulator import emulator_environment, new_emulator
    from .server import EmulatorServer

    with EmulatorServer(new_emulator(clock=blocking.clock), tls=args.tls, port=args.port) as server:
        out.write(f"# azid emulator at {server.url}; Ctrl-C stops it\n")
        for name, value in emulator_environment(server.url, server.ca_file).items():
            out.write(f"export {name}={value}\n")
        out.flush()
        with contextlib.suppress(KeyboardInterrupt):
            wait()
    return OK


# -- the parser --


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="azid", description="Microsoft Entra ID tokens, and a local emulator."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    token = commands.add_parser("token", help="get an access token, as `az account get-access-token` does")
    token.add_argument("scopes", nargs="*", metavar="SCOPE", help=f"scopes (default: {DEFAULT_SCOPE})")
    source = token.add_mutually_exclusive_group()
    source.add_argument(
        "--credential",
        default="DefaultAzureCredential",
        metavar="NAME",
        help=f"the credential to use: {', '.join(CREDENTIALS)} (default: DefaultAzureCredential)",
    )
    source.add_argument(
        "--emulator", action="store_true", help="get the token from an emulator started on 127.0.0.1"
    )
    token.add_argument("--tenant", metavar="T", help="the tenant to ask (the credential must allow it)")
    token.add_argument("--claims", metavar="C", help="a claims challenge (JSON) to pass on")
    token.add_argument("--output", choices=("json", "text"), default="text", help="output format")
    commands.add_parser("explain", help="what DefaultAzureCredential would try here (no I/O)")
    decode = commands.add_parser("decode", help="show a JWT's header and claims")
    decode.add_argument("token", nargs="?", metavar="TOKEN", help="the token, or - (default) for stdin")
    decode.add_argument("--jwks", metavar="URL", help="verify the signature with the keys at URL")
    emulator = commands.add_parser("emulator", help="serve the emulator on 127.0.0.1 until Ctrl-C")
    emulator.add_argument("--port", type=int, default=0, help="the port (default: a free one)")
    emulator.add_argument("--tls", action="store_true", help="serve HTTPS with a CA of its own")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    wait: Callable[[], object] = _NEVER.wait,
) -> int:
    """Run the command line; the exit code. `wait` is how `azid emulator` waits for Ctrl-C."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = _parser().parse_args(argv)
    commands: Mapping[str, Callable[[argparse.Namespace, TextIO, TextIO], int]] = {
        "token": _token,
        "explain": _explain,
        "decode": _decode,
        "emulator": lambda a, o, e: _emulator(a, o, e, wait),
    }
    try:
        return commands[args.command](args, out, err)
    except _Failed as exc:
        err.write(f"{exc}\n")
        return exc.code
    except ConfigError as exc:
        err.write(f"azid: {_one_line(exc.message)}\n")
        return USAGE
    except AzidError as exc:
        err.write(f"azid: {_one_line(exc.message)}\n")
        return FAILED
