"""Fake `az`, `azd` and `pwsh` executables for tests: script text and canned outputs (PROTOCOL.md §5).

This module only builds text; it never writes a file or starts a process (azid_core does no I/O).
`fake_tool_script` returns a Python script that, when run as the tool, appends one JSON line to
`record_path` ({"argv", "cwd", "env", "stdin_is_null", "pid", "pgid"}), writes the canned stdout and
stderr, sleeps and exits. A test writes it to a temporary directory on PATH under the tool's name and
marks it executable (the project's `tests/fake_tools.py` has `install` for that).

The canned outputs are the formats §5.1/§5.2 document and the failure texts §5.3 maps, so a user's own
tests can exercise the same paths azid's do.
"""

from __future__ import annotations

import base64
import json
import sys

__all__ = [
    "AZD_CLAIMS_UNSUPPORTED",
    "AZD_NOT_LOGGED_IN",
    "AZ_NOT_LOGGED_IN",
    "AZ_NOT_RECOGNIZED",
    "PWSH_EXECUTION_POLICY",
    "PWSH_NOT_LOGGED_IN",
    "PWSH_NO_MODULE",
    "RECORDED_ENV",
    "az_output",
    "azd_error_output",
    "azd_output",
    "clixml",
    "fake_tool_script",
    "fake_jwt",
    "pwsh_output",
]

#: The environment variables a fake tool records (None when unset): what §5.1 adds, and the
#: timeout variable, which an adapter must not need to pass on.
RECORDED_ENV = ("AZURE_CORE_NO_COLOR", "NO_COLOR", "AZID_PROCESS_TIMEOUT", "PATH")

_SCRIPT = '''#!{python}
"""A fake developer tool written by azid_core.testing.fake_tools."""
import json, os, sys, time

record_path = {record_path!r}
if record_path is not None:
    try:
        stdin_is_null = os.path.samestat(os.fstat(0), os.stat(os.devnull))
    except OSError:
        stdin_is_null = None
    try:
        pgid = os.getpgid(0)
    except (AttributeError, OSError):
        pgid = None
    record = {{
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "env": {{name: os.environ.get(name) for name in {names!r}}},
        "stdin_is_null": stdin_is_null,
        "pid": os.getpid(),
        "pgid": pgid,
    }}
    with open(record_path, "a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\\n")
sys.stdout.buffer.write({stdout!r})
sys.stdout.flush()
sys.stderr.buffer.write({stderr!r})
sys.stderr.flush()
if {sleep!r} > 0:
    time.sleep({sleep!r})
sys.exit({exit_code!r})
'''


def _bytes(text: str | bytes) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else text


def fake_tool_script(
    *,
    stdout: str | bytes = "",
    stderr: str | bytes = "",
    exit_code: int = 0,
    record_path: str | None = None,
    sleep: float = 0.0,
    python: str | None = None,
) -> str:
    """The text of an executable Python script playing a developer tool.

    It records its invocation to `record_path` (one JSON line per run; None records nothing),
    writes `stdout` and `stderr` (str as UTF-8), sleeps `sleep` seconds (for timeout tests) and
    exits with `exit_code`. The shebang names `python`, by default this interpreter.
    """
    return _SCRIPT.format(
        python=python or sys.executable,
        record_path=record_path,
        names=RECORDED_ENV,
        stdout=_bytes(stdout),
        stderr=_bytes(stderr),
        sleep=float(sleep),
        exit_code=int(exit_code),
    )


def fake_jwt(marker: str = "fake") -> str:
    """A JWT-shaped access token (unsigned: developer tools' tokens are opaque to azid)."""

    def part(value: dict[str, object]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'sub': marker})}.sig"


def az_output(
    token: str,
    *,
    expires_on: int | str | None = 1893553445,
    expires_on_local: str | None = "2030-01-02 03:04:05.000000",
    subscription: str = "00000000-0000-0000-0000-000000000001",
    tenant: str = "00000000-0000-0000-0000-000000000002",
) -> str:
    """`az account get-access-token --output json` stdout (§5.1). `expires_on=None` leaves the field
    out, as az before 2.54 did, so only the local-time `expiresOn` is left."""
    reply: dict[str, object] = {"accessToken": token}
    if expires_on_local is not None:
        reply["expiresOn"] = expires_on_local
    if expires_on is not None:
        reply["expires_on"] = expires_on
    reply.update(subscription=subscription, tenant=tenant, tokenType="Bearer")
    return json.dumps(reply, indent=2) + "\n"


def azd_output(token: str, *, expires_on: str = "2038-01-18T00:00:00Z") -> str:
    """`azd auth token --output json` stdout (§5.1); other keys are ignored by azid."""
    return json.dumps({"token": token, "expiresOn": expires_on}) + "\n"


def azd_error_output(message: str, *, error: str | None = None) -> str:
    """azd's JSON error lines: a `consoleMessage` line and, when `error` is given, an error line."""
    lines = [
        json.dumps(
            {"type": "consoleMessage", "timestamp": "2026-01-01T00:00:00Z", "data": {"message": message}}
        )
    ]
    if error is not None:
        lines.insert(0, json.dumps({"error": error}))
    return "\n".join(lines) + "\n"


def pwsh_output(token: str, expires_on: int = 1893553445) -> str:
    """What azid's PowerShell script prints on success: `azsdk%<token>%<unix seconds>` (§5.2)."""
    return f"azsdk%{token}%{expires_on}\n"


def clixml(*errors: str) -> str:
    """PowerShell's CLIXML stderr with one `<S S="Error">` element per text (newlines as `_x000D__x000A_`)."""
    body = "".join(
        '<S S="Error">' + text.replace("\r\n", "_x000D__x000A_").replace("\n", "_x000D__x000A_") + "</S>"
        for text in errors
    )
    return (
        "#< CLIXML\r\n"
        '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">' + body + "</Objs>"
    )


#: az stderr when nobody is logged in (§5.3 → NotConfiguredError "az login").
AZ_NOT_LOGGED_IN = "ERROR: Please run 'az login' to setup account.\n"
#: cmd.exe's answer when az is not installed (§5.3 → CredentialUnavailableError).
AZ_NOT_RECOGNIZED = (
    "'az' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
)
#: azd output when nobody is logged in (§5.3 → NotConfiguredError "azd auth login").
AZD_NOT_LOGGED_IN = azd_error_output("\nERROR: not logged in, run `azd auth login` to login\n")
#: azd before 1.18.1, asked for claims (§5.3 → CredentialUnavailableError).
AZD_CLAIMS_UNSUPPORTED = "Error: unknown flag: --claims\n"
#: The script's stdout when Az.Accounts is missing (§5.3 → CredentialUnavailableError).
PWSH_NO_MODULE = "NO_AZ_ACCOUNT_MODULE\n"
#: pwsh stderr when nobody is logged in (§5.3 → NotConfiguredError "Connect-AzAccount").
PWSH_NOT_LOGGED_IN = clixml("Run Connect-AzAccount to login.\r\n")
#: pwsh stderr when the execution policy forbids the script (§5.3 → CredentialUnavailableError).
PWSH_EXECUTION_POLICY = clixml("AuthorizationManager check failed.\r\n")
