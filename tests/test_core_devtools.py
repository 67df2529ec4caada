"""The developer-tool credentials as core objects (PROTOCOL.md §5, §7): exact argv, environment, cwd
and timeout per tool; every §5.2 output format in three time zones; every §5.3 row; the §5.1
allow-lists; the claims login commands; the cache on and off; secrets; pickling."""

from __future__ import annotations

import base64
import json
import logging
import pickle
import subprocess
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from azid_core import blocking
from azid_core.acquire import TokenCall, acquire_alone
from azid_core.devtools.az import AzureCliCredential, az_login_command
from azid_core.devtools.azd import AzureDeveloperCliCredential
from azid_core.devtools.common import DeveloperToolCredential
from azid_core.devtools.pwsh import AzurePowerShellCredential, clixml_errors, connect_command, script
from azid_core.drive import run
from azid_core.effects import CommandResult, HttpResponse, RunCommand
from azid_core.errors import (
    AzidError,
    ConfigError,
    CredentialUnavailableError,
    DeveloperToolError,
    NotConfiguredError,
    ProtocolError,
    TransportError,
)
from azid_core.testing import ScriptedIO
from azid_core.testing import fake_tools as ft

if TYPE_CHECKING:
    from collections.abc import Callable

NOW = 1_700_000_000.0
SCOPE = "https://management.azure.com/.default"
TOKEN = ft.fake_jwt("devtools")
OPAQUE = "opaque-token-Zq81xKw"  # not JWT-shaped: only the credential's own masking can hide it
CLAIMS = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'
CLAIMS_B64 = "eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19"
ZONES = ("UTC", "America/Los_Angeles", "Asia/Kolkata")
AZ_LOCAL_EXPECTED = {"UTC": 1893553445, "America/Los_Angeles": 1893582245, "Asia/Kolkata": 1893533645}
# The classes, called with options by the tests (mypy sees their common base type otherwise).
TOOLS: tuple[type[Any], ...] = (
    AzureCliCredential,
    AzureDeveloperCliCredential,
    AzurePowerShellCredential,
)


def fetch(
    credential: DeveloperToolCredential,
    io: ScriptedIO,
    *scopes: str,
    claims: str | None = None,
    tenant: str | None = None,
    now: float = NOW,
) -> Any:
    call = TokenCall(scopes or (SCOPE,), claims, tenant, False)
    return run(acquire_alone(credential, call, now), io)


def done(stdout: str = "", stderr: str = "", code: int = 0) -> CommandResult:
    return CommandResult(code, stdout.encode(), stderr.encode())


def commands(io: ScriptedIO) -> list[RunCommand]:
    assert all(isinstance(effect, RunCommand) for effect in io.seen)
    return [effect for effect in io.seen if isinstance(effect, RunCommand)]


def zone_reader(zone: str) -> Callable[[str], float]:
    return lambda text: datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def fails(
    credential: DeveloperToolCredential, reply: CommandResult | BaseException, *scopes: str
) -> AzidError:
    io = ScriptedIO(reply)
    with pytest.raises(AzidError) as caught:
        fetch(credential, io, *scopes)
    assert io.unused == 0
    return caught.value


def az(**options: Any) -> AzureCliCredential:
    return AzureCliCredential(env=options.pop("env", {}), **options)


def azd(**options: Any) -> AzureDeveloperCliCredential:
    return AzureDeveloperCliCredential(env=options.pop("env", {}), **options)


def pwsh(**options: Any) -> AzurePowerShellCredential:
    return AzurePowerShellCredential(env=options.pop("env", {}), **options)


# -- §5.1: the command each tool runs --


def test_az_runs_get_access_token_for_the_resource_with_tenant_and_subscription() -> None:
    io = ScriptedIO(done(ft.az_output(TOKEN)))
    info = fetch(az(tenant_id="t1", subscription="My Sub_1.x"), io)
    assert (info.token, info.expires_on, info.source) == (TOKEN, 1893553445, "AzureCliCredential")
    (command,) = commands(io)
    assert command == RunCommand(
        (
            "az", "account", "get-access-token", "--output", "json",
            "--resource", "https://management.azure.com",
            "--tenant", "t1", "--subscription", "My Sub_1.x",
        ),
        "/bin",
        (("AZURE_CORE_NO_COLOR", "true"),),
        10.0,
    )  # fmt: skip


def test_az_without_tenant_or_subscription_and_a_scope_without_default() -> None:
    io = ScriptedIO(done(ft.az_output(TOKEN)))
    fetch(az(), io, "https://vault.azure.net")
    assert commands(io)[0].argv == (
        "az", "account", "get-access-token", "--output", "json", "--resource", "https://vault.azure.net",
    )  # fmt: skip


def test_azd_passes_every_scope_in_order_the_tenant_and_claims() -> None:
    io = ScriptedIO(done(ft.azd_output(TOKEN)))
    info = fetch(azd(tenant_id="t1"), io, "b/.default", "a/.default", claims=CLAIMS)
    assert (info.token, info.expires_on, info.source) == (TOKEN, 2147385600, "AzureDeveloperCliCredential")
    assert commands(io)[0] == RunCommand(
        (
            "azd", "auth", "token", "--output", "json", "--no-prompt",
            "--scope", "b/.default", "--scope", "a/.default",
            "--tenant-id", "t1", "--claims", CLAIMS_B64,
        ),
        "/bin",
        (("NO_COLOR", "true"),),
        10.0,
    )  # fmt: skip


def test_azd_without_tenant_or_claims() -> None:
    io = ScriptedIO(done(ft.azd_output(TOKEN)))
    fetch(azd(), io)
    assert commands(io)[0].argv == (
        "azd",
        "auth",
        "token",
        "--output",
        "json",
        "--no-prompt",
        "--scope",
        SCOPE,
    )


def test_pwsh_runs_the_encoded_script_without_a_profile() -> None:
    io = ScriptedIO(done(ft.pwsh_output(OPAQUE, 1893553445)))
    info = fetch(pwsh(tenant_id="t1"), io)
    assert (info.token, info.expires_on, info.source) == (OPAQUE, 1893553445, "AzurePowerShellCredential")
    (command,) = commands(io)
    assert command.argv[:4] == ("pwsh", "-NoProfile", "-NonInteractive", "-EncodedCommand")
    assert (command.cwd, command.env, command.timeout) == ("/bin", (), 10.0)
    text = base64.b64decode(command.argv[4]).decode("utf-16-le")
    assert text == script("https://management.azure.com", "t1")
    assert "ResourceUrl = 'https://management.azure.com'" in text
    assert "$tenant = 't1'" in text


def test_the_pwsh_script_follows_the_outline() -> None:
    text = script("https://r", "")
    steps = [
        "$ErrorActionPreference = 'Stop'",
        "Import-Module Az.Accounts -MinimumVersion $minimum",
        "Write-Output 'NO_AZ_ACCOUNT_MODULE'",
        "ResourceUrl = 'https://r'; WarningAction = 'Ignore'",
        "$parameters['TenantId'] = $tenant",
        "$module.Version -ge [version]'2.17.0' -and $module.Version -lt [version]'5.0.0'",
        "$parameters['AsSecureString'] = $true",
        "Get-AzAccessToken @parameters",
        "SecureStringToBSTR",
        "ConvertFrom-SecureString -AsPlainText",
        'Write-Output "`nazsdk%$($token)%$($result.ExpiresOn.ToUnixTimeSeconds())`n"',
    ]
    positions = [text.index(step) for step in steps]
    assert positions == sorted(positions)
    assert "$tenant = ''" in text
    assert "[version]$minimum = '2.2.0'" in text


@pytest.mark.parametrize("tool", TOOLS)
def test_tool_path_replaces_the_program(tool: type[Any]) -> None:
    io = ScriptedIO(TransportError("not_found", "no such file"))
    with pytest.raises(CredentialUnavailableError) as caught:
        fetch(tool(tool_path="/opt/tools/bin/x", env={}), io)
    assert commands(io)[0].argv[0] == "/opt/tools/bin/x"
    assert "not found at '/opt/tools/bin/x' (tool_path)" in str(caught.value)
    assert isinstance(caught.value.__cause__, TransportError)


@pytest.mark.parametrize("tool", TOOLS)
def test_windows_runs_in_systemroot(tool: type[Any]) -> None:
    credential = tool(env={"SystemRoot": "C:\\Windows", "PATH": "x"}, platform="win32")
    reply = {"az": ft.az_output(TOKEN), "azd": ft.azd_output(TOKEN), "pwsh": ft.pwsh_output(TOKEN)}[tool.tool]
    io = ScriptedIO(done(reply))
    fetch(credential, io)
    assert commands(io)[0].cwd == "C:\\Windows"
    assert commands(io)[0].argv[0] == tool.tool  # the adapter finds az.cmd / azd.exe (§0.1)


@pytest.mark.parametrize("tool", TOOLS)
def test_windows_without_systemroot_is_unavailable_and_runs_nothing(
    tool: type[Any],
) -> None:
    io = ScriptedIO()
    with pytest.raises(CredentialUnavailableError, match=f"^{tool.__name__}: SYSTEMROOT is not set"):
        fetch(tool(env={"SYSTEMROOT": ""}, platform="win32"), io)
    assert io.seen == []


@pytest.mark.parametrize(
    ("options", "env", "expected"),
    [
        ({}, {}, 10.0),
        ({"process_timeout": 5}, {"AZID_PROCESS_TIMEOUT": "20"}, 5.0),
        ({}, {"AZID_PROCESS_TIMEOUT": " 20.5 "}, 20.5),
        ({}, {"AZID_PROCESS_TIMEOUT": ""}, 10.0),
        ({"process_timeout": 600}, {}, 600.0),
    ],
)
def test_the_timeout(options: dict[str, Any], env: dict[str, str], expected: float) -> None:
    for tool in TOOLS:
        io = ScriptedIO(TransportError("timeout", "slow"))
        with pytest.raises(CredentialUnavailableError) as caught:
            fetch(tool(env=env, **options), io)
        assert commands(io)[0].timeout == expected
        assert f"did not finish within {expected:g} s" in str(caught.value)


@pytest.mark.parametrize(
    ("options", "env", "name"),
    [
        ({"process_timeout": 0}, {}, "process_timeout"),
        ({"process_timeout": 600.5}, {}, "process_timeout"),
        ({"process_timeout": -1}, {}, "process_timeout"),
        ({"process_timeout": True}, {}, "process_timeout"),
        ({"process_timeout": "5"}, {}, "process_timeout"),
        ({"process_timeout": float("nan")}, {}, "process_timeout"),
        ({}, {"AZID_PROCESS_TIMEOUT": "abc"}, "AZID_PROCESS_TIMEOUT"),
        ({}, {"AZID_PROCESS_TIMEOUT": "0"}, "AZID_PROCESS_TIMEOUT"),
        ({}, {"AZID_PROCESS_TIMEOUT": "601"}, "AZID_PROCESS_TIMEOUT"),
        ({}, {"AZID_PROCESS_TIMEOUT": "inf"}, "AZID_PROCESS_TIMEOUT"),
    ],
)
def test_a_bad_timeout_is_a_config_error(options: dict[str, Any], env: dict[str, str], name: str) -> None:
    for tool in TOOLS:
        with pytest.raises(ConfigError, match=f"^{tool.__name__}: {name} is invalid: .*at most 600"):
            tool(env=env, **options)


# -- §5.2: every output format --


@pytest.mark.parametrize("zone", ZONES)
def test_az_expiry_forms_in_each_time_zone(zone: str) -> None:
    reader = zone_reader(zone)
    cases = [
        (ft.az_output(TOKEN, expires_on=1893553445), 1893553445),  # epoch wins over local time
        (ft.az_output(TOKEN, expires_on="1893553445"), 1893553445),
        (ft.az_output(TOKEN, expires_on=None), AZ_LOCAL_EXPECTED[zone]),
        (
            ft.az_output(TOKEN, expires_on=None, expires_on_local="2030-01-02 03:04:05"),
            AZ_LOCAL_EXPECTED[zone],
        ),
    ]
    for stdout, expected in cases:
        info = fetch(az(naive_to_epoch=reader), ScriptedIO(done(stdout)))
        assert info.expires_on == expected


@pytest.mark.parametrize("zone", ZONES)
def test_azd_and_pwsh_expiry_forms_do_not_depend_on_the_zone(zone: str) -> None:
    del zone  # their forms carry an offset or are epoch seconds: nothing reads local time
    for expires_on, expected in [
        ("2038-01-18T00:00:00Z", 2147385600),
        ("2030-01-02T03:04:05+02:00", 1893546245),
        ("2030-01-02T03:04:05.1234567-08:00", 1893582245),
    ]:
        info = fetch(azd(), ScriptedIO(done(ft.azd_output(TOKEN, expires_on=expires_on))))
        assert info.expires_on == expected
    info = fetch(
        pwsh(), ScriptedIO(done("WARNING: x\r\n" + ft.pwsh_output(TOKEN, 1893553445), ft.clixml("w")))
    )
    assert info.expires_on == 1893553445


SUBPROCESS = """
import json
from azid_core.acquire import TokenCall, acquire_alone
from azid_core.devtools.az import AzureCliCredential
from azid_core.devtools.azd import AzureDeveloperCliCredential
from azid_core.drive import run
from azid_core.effects import CommandResult
from azid_core.testing import ScriptedIO
from azid_core.testing import fake_tools as ft

call = TokenCall(("https://management.azure.com/.default",), None, None, False)
az = ScriptedIO(CommandResult(0, ft.az_output("t", expires_on=None).encode(), b""))
azd = ScriptedIO(CommandResult(0, ft.azd_output("t").encode(), b""))
print(json.dumps([
    run(acquire_alone(AzureCliCredential(env={}), call, 1.7e9), az).expires_on,
    run(acquire_alone(AzureDeveloperCliCredential(env={}), call, 1.7e9), azd).expires_on,
]))
"""


@pytest.mark.parametrize("zone", ZONES)
def test_the_default_reads_local_time_through_blocking(zone: str) -> None:
    done_ = subprocess.run(
        [sys.executable, "-c", SUBPROCESS], env={"TZ": zone}, capture_output=True, check=True, text=True
    )
    assert json.loads(done_.stdout) == [AZ_LOCAL_EXPECTED[zone], 2147385600]


def test_local_naive_to_epoch_is_datetime_timestamp() -> None:
    text = "2030-01-02 03:04:05.000000"
    assert blocking.local_naive_to_epoch(text) == datetime.fromisoformat(text).timestamp()
    # In this process too, whatever its zone: the default is that function.
    info = fetch(az(), ScriptedIO(done(ft.az_output(TOKEN, expires_on=None, expires_on_local=text))))
    assert info.expires_on == int(blocking.local_naive_to_epoch(text))


# -- §5.3: every row --


@pytest.mark.parametrize(
    ("tool", "missing"),
    [
        (AzureCliCredential, "Azure CLI not found on PATH"),
        (AzureDeveloperCliCredential, "Azure Developer CLI not found on PATH"),
        (AzurePowerShellCredential, "PowerShell not installed"),
    ],
)
def test_not_found_in_every_form(tool: type[Any], missing: str) -> None:
    name = tool.tool
    error = fails(tool(env={}), TransportError("not_found", "x"))
    assert type(error) is CredentialUnavailableError
    assert str(error) == f"{tool.__name__}: {missing}: looked for {name!r} (not_found)"
    for reply in (done(code=127, stderr="sh: az: not found"), done(code=1, stderr=ft.AZ_NOT_RECOGNIZED)):
        error = fails(tool(env={}), reply)
        assert type(error) is CredentialUnavailableError
        assert str(error) == f"{tool.__name__}: {missing} (exit code {reply.returncode}; tried {name!r})"


def test_windows_not_found_names_the_suffixes_tried() -> None:
    error = fails(az(env={"SYSTEMROOT": "C:\\W"}, platform="win32"), TransportError("not_found", "x"))
    assert str(error) == (
        "AzureCliCredential: Azure CLI not found on PATH: looked for 'az' (as .cmd, .exe or bare) (not_found)"
    )


def test_pwsh_on_windows_falls_back_to_windows_powershell() -> None:
    credential = pwsh(env={"SYSTEMROOT": "C:\\W"}, platform="win32")
    io = ScriptedIO(TransportError("not_found", "x"), done(ft.pwsh_output(TOKEN)))
    assert fetch(credential, io).token == TOKEN
    assert [c.argv[0] for c in commands(io)] == ["pwsh", "powershell"]
    assert commands(io)[0].argv[1:] == commands(io)[1].argv[1:]
    io = ScriptedIO(TransportError("not_found", "x"), TransportError("not_found", "y"))
    with pytest.raises(CredentialUnavailableError) as caught:
        fetch(pwsh(env={"SYSTEMROOT": "C:\\W"}, platform="win32"), io)
    assert str(caught.value) == (
        "AzurePowerShellCredential: PowerShell not installed: looked for 'pwsh' or 'powershell' "
        "(as .cmd, .exe or bare) (not_found)"
    )
    # Elsewhere, and with tool_path, there is nothing to fall back to.
    assert len(commands(_failed(pwsh(), TransportError("not_found", "x")))) == 1
    assert len(commands(_failed(pwsh(tool_path="C:\\p.exe", env={"SYSTEMROOT": "C:\\W"}, platform="win32"),
                                TransportError("not_found", "x")))) == 1  # fmt: skip


def _failed(credential: DeveloperToolCredential, *replies: CommandResult | BaseException) -> ScriptedIO:
    io = ScriptedIO(*replies)
    with pytest.raises(AzidError):
        fetch(credential, io)
    return io


def test_pwsh_exit_9009_is_not_installed_on_windows_only() -> None:
    error = fails(pwsh(env={"SYSTEMROOT": "C:\\W"}, platform="win32"), done(code=9009))
    assert type(error) is CredentialUnavailableError
    assert "PowerShell not installed (exit code 9009; tried 'pwsh')" in str(error)
    assert type(fails(pwsh(platform="linux"), done(code=9009))) is DeveloperToolError


@pytest.mark.parametrize("tool", TOOLS)
def test_timeout_and_spawn_are_unavailable_naming_the_limit(tool: type[Any]) -> None:
    error = fails(tool(env={}, process_timeout=3), TransportError("timeout", "slow"))
    assert type(error) is CredentialUnavailableError
    assert str(error) == (
        f"{tool.__name__}: {tool.label} did not finish within 3 s; raise the limit with process_timeout "
        "or AZID_PROCESS_TIMEOUT (timeout)"
    )
    assert isinstance(error.__cause__, TransportError)
    error = fails(tool(env={}), TransportError("spawn", "x cannot be started: Permission denied"))
    assert type(error) is CredentialUnavailableError
    assert str(error) == (
        f"{tool.__name__}: {tool.tool!r} could not be started within the 10 s limit "
        "(process_timeout/AZID_PROCESS_TIMEOUT): x cannot be started: Permission denied (spawn)"
    )


@pytest.mark.parametrize("tool", TOOLS)
def test_output_over_the_limit_is_a_protocol_error(tool: type[Any]) -> None:
    error = fails(tool(env={}), TransportError("too_large", "big"))
    assert isinstance(error, ProtocolError)
    assert (error.source, error.field) == (tool.tool, "output")
    assert (
        str(error)
        == f"{tool.__name__}: cannot read the {tool.tool} reply: output: over the size limit (too_large)"
    )


def test_az_not_logged_in() -> None:
    for stderr in (ft.AZ_NOT_LOGGED_IN, "ERROR: Subscription 'x' not found. Run 'az account set'."):
        error = fails(az(), done(code=1, stderr=stderr))
        assert type(error) is NotConfiguredError
        assert error.login_command == "az login"
        assert str(error).startswith(
            "AzureCliCredential (az): not signed in, or no usable subscription; run `az login`: "
        )
    # An Entra refusal mentioning az login is a tool failure, not a missing sign-in.
    error = fails(az(), done(code=1, stderr="AADSTS50076: MFA required. Run 'az login'."))
    assert type(error) is DeveloperToolError


def test_azd_rows() -> None:
    error = fails(azd(), done(ft.AZD_NOT_LOGGED_IN, code=1))
    assert type(error) is NotConfiguredError
    assert (str(error), error.login_command) == (
        "AzureDeveloperCliCredential (azd): not signed in; run `azd auth login`",
        "azd auth login",
    )
    error = fails(azd(), done(stderr="ERROR: not logged in, run `azd auth login` to login", code=1))
    assert type(error) is NotConfiguredError
    error = fails(azd(), done(stderr="AADSTS70043 not logged in, run `azd auth login` to login", code=1))
    assert type(error) is DeveloperToolError
    error = fails(azd(), done(stderr=ft.AZD_CLAIMS_UNSUPPORTED, code=1))
    assert type(error) is CredentialUnavailableError
    assert "azd 1.18.1 or later" in str(error)


def test_pwsh_rows() -> None:
    error = fails(pwsh(), done(ft.PWSH_NO_MODULE))
    assert type(error) is CredentialUnavailableError
    assert "Az.Accounts module 2.2.0 or later is not installed" in str(error)
    error = fails(pwsh(), done(stderr=ft.PWSH_NOT_LOGGED_IN, code=1))
    assert type(error) is NotConfiguredError
    assert (str(error), error.login_command) == (
        "AzurePowerShellCredential (pwsh): not signed in; run `Connect-AzAccount`",
        "Connect-AzAccount",
    )
    error = fails(pwsh(), done(stderr=ft.PWSH_EXECUTION_POLICY, code=1))
    assert type(error) is CredentialUnavailableError
    assert "execution policy" in str(error)


def test_other_failures_are_developer_tool_errors_with_a_masked_excerpt() -> None:
    error = fails(az(), done(code=2, stderr=f"ERROR: boom {TOKEN}\n"))
    assert isinstance(error, DeveloperToolError)
    assert str(error) == (
        "AzureCliCredential: `az account get-access-token --output json --resource "
        "https://management.azure.com` exited with 2: ERROR: boom ****"
    )
    assert (error.tool, error.returncode, error.stderr_excerpt) == ("az", 2, "ERROR: boom ****")
    error = fails(az(), done('{"accessToken": "leak"}', code=2))  # nothing on stderr: stdout is shown
    assert isinstance(error, DeveloperToolError)
    assert error.stderr_excerpt == '{"accessToken": "****"}'


def test_azd_excerpt_prefers_the_error_line_then_the_console_message_then_stderr() -> None:
    cases = [
        (ft.azd_error_output("console text", error="the error"), "", "the error"),
        (ft.azd_error_output("  console text \n"), "stderr text", "console text"),
        ('{"error": ""}\n{"type": "consoleMessage", "data": {"message": ""}}\n{"data": 1}\nnot json',
         "stderr text", "stderr text"),
        ("", f"plain {TOKEN}", "plain ****"),
    ]  # fmt: skip
    for stdout, stderr, expected in cases:
        error = fails(azd(), done(stdout, stderr, code=1))
        assert isinstance(error, DeveloperToolError)
        assert error.stderr_excerpt == expected
        assert str(error).endswith(f"exited with 1: {expected}")
        assert str(error).startswith(
            "AzureDeveloperCliCredential: `azd auth token --output json --no-prompt --scope "
        )


def test_pwsh_excerpt_decodes_clixml_and_masks_token_lines() -> None:
    stderr = ft.clixml("_x001B_[31;1mGet-AzAccessToken: boom &amp; more_x001B_[0m\r\n", "line two_x0021_")
    error = fails(pwsh(), done(stderr=stderr, code=1))
    assert isinstance(error, DeveloperToolError)
    assert error.stderr_excerpt == "Get-AzAccessToken: boom & more\nline two!"
    assert str(error) == (
        "AzurePowerShellCredential: `pwsh -NoProfile -NonInteractive -EncodedCommand …` exited with 1: "
        "Get-AzAccessToken: boom & more\nline two!"
    )
    error = fails(pwsh(), done(f"azsdk%{OPAQUE}%1893553445 and then", "", code=1))
    assert isinstance(error, DeveloperToolError)
    assert OPAQUE not in str(error)
    assert error.stderr_excerpt == "azsdk%**** and then"


def test_clixml_errors() -> None:
    assert clixml_errors("plain text") == "plain text"
    assert clixml_errors(ft.clixml("a&lt;b&gt;&quot;&apos;")) == "a<b>\"'"
    assert clixml_errors('#< CLIXML\r\n<Objs><S S="Warning">w</S></Objs>') == ""


@pytest.mark.parametrize(
    ("tool", "stdout", "field", "problem"),
    [
        (AzureCliCredential, "not json", "stdout", "not a JSON object"),
        (AzureCliCredential, '{"expires_on": 1893553445}', "accessToken", "missing"),
        (AzureCliCredential, '{"accessToken": "a b", "expires_on": 1893553445}', "accessToken", "not 1 to"),
        (AzureCliCredential, '{"accessToken": "t"}', "expires_on", "missing (and no expiresOn)"),
        (AzureCliCredential, '{"accessToken": "t", "expires_on": 1}', "expires_on", "already past"),
        (AzureCliCredential, '{"accessToken": "t", "expires_on": "soon"}', "expires_on", "not an expiry"),
        (AzureCliCredential, '{"accessToken": "t", "expiresOn": "2030-01-02"}', "expiresOn", "not an expiry"),
        (AzureDeveloperCliCredential, "[]", "stdout", "not a JSON object"),
        (AzureDeveloperCliCredential, '{"expiresOn": "2038-01-18T00:00:00Z"}', "token", "missing"),
        (AzureDeveloperCliCredential, '{"token": "t"}', "expiresOn", "missing"),
        (AzureDeveloperCliCredential, '{"token": "t", "expiresOn": "2038-01-18T00:00:00"}', "expiresOn",
         "not an expiry"),
        (AzurePowerShellCredential, "", "stdout", "no azsdk% line"),
        (AzurePowerShellCredential, "azsdk%t%1%2", "azsdk", "not azsdk%<token>%<seconds>"),
        (AzurePowerShellCredential, "azsdk%%1893553445", "token", "missing"),
        (AzurePowerShellCredential, "azsdk%t%18935.5", "expires_on", "not a whole number"),
        (AzurePowerShellCredential, "azsdk%t%1", "expires_on", "already past"),
    ],
)  # fmt: skip
def test_unreadable_output_is_a_protocol_error(
    tool: type[Any], stdout: str, field: str, problem: str
) -> None:
    options = {"naive_to_epoch": zone_reader("UTC")} if tool is AzureCliCredential else {}
    error = fails(tool(env={}, **options), done(stdout))
    assert isinstance(error, ProtocolError)
    assert (error.source, error.field) == (tool.tool, field)
    assert str(error).startswith(f"{tool.__name__}: cannot read the {tool.tool} reply: {field}: ")
    assert problem in str(error)


def test_an_expired_token_is_not_shown() -> None:
    error = fails(pwsh(), done(ft.pwsh_output(OPAQUE, 5)))
    assert OPAQUE not in str(error)


def test_a_wrong_reply_from_the_adapter() -> None:
    with pytest.raises(AzidError, match=r"answered RunCommand.*with HttpResponse, not CommandResult"):
        fetch(az(), ScriptedIO(HttpResponse(200)))


# -- §5.1: allow-lists, before any effect --


@pytest.mark.parametrize(
    "scope",
    [
        "x; rm -rf ~",
        "https://x/.default\n",
        "a\nb",
        "-x",
        "a" * 1025,
        "x'y",
        "x&y",
        "x|y",
        "x$(y)",
        "%PATH%",
        "",
    ],
)
def test_scopes_outside_the_allow_list_run_nothing(scope: str) -> None:
    for tool in TOOLS:
        io = ScriptedIO()
        with pytest.raises(ConfigError, match=f"^{tool.__name__}: scopes is invalid"):
            fetch(tool(env={}), io, scope)
        assert io.seen == []


def test_the_longest_allowed_scope_runs() -> None:
    io = ScriptedIO(done(ft.azd_output(TOKEN)))
    fetch(azd(), io, "a" * 1024)
    assert commands(io)[0].argv[-1] == "a" * 1024


def test_az_and_pwsh_take_one_scope_azd_many() -> None:
    for credential in (az(), pwsh()):
        with pytest.raises(ConfigError, match="exactly one scope is required, not 2"):
            fetch(credential, ScriptedIO(), "a", "b")
    with pytest.raises(ConfigError, match="at least one scope"):
        run(acquire_alone(azd(), TokenCall((), None, None, False), NOW), ScriptedIO())


@pytest.mark.parametrize("tenant", ["-t", "t;x", "t x", "a" * 257, "t\n"])
def test_tenants_outside_the_allow_list(tenant: str) -> None:
    for tool in TOOLS:
        with pytest.raises(ConfigError, match=f"^{tool.__name__}: tenant_id is invalid"):
            tool(tenant_id=tenant, env={})
        io = ScriptedIO()
        with pytest.raises(ConfigError, match=f"^{tool.__name__}: tenant_id is invalid"):
            fetch(tool(env={}), io, tenant=tenant)
        assert io.seen == []


def test_tenant_resolution() -> None:
    io = ScriptedIO(done(ft.az_output(TOKEN)), done(ft.az_output(TOKEN)))
    fetch(az(), io, tenant="t2")  # configured "" takes the requested tenant (§1.3 rule 3)
    fetch(az(tenant_id="t1", additionally_allowed_tenants=["*"]), io, tenant="t3")
    assert [c.argv[-1] for c in commands(io)] == ["t2", "t3"]
    with pytest.raises(ConfigError, match="additionally_allowed_tenants"):
        fetch(az(tenant_id="t1"), ScriptedIO(), tenant="t2")
    io = ScriptedIO(done(ft.az_output(TOKEN)))
    fetch(az(tenant_id="t1", env={"AZURE_IDENTITY_DISABLE_MULTITENANTAUTH": "1"}), io, tenant="t2")
    assert commands(io)[0].argv[-2:] == ("--tenant", "t1")
    with pytest.raises(ConfigError, match="additionally_allowed_tenants is invalid: a list"):
        az(additionally_allowed_tenants="t2")
    with pytest.raises(ConfigError, match="additionally_allowed_tenants is invalid: use 1 to 256"):
        az(additionally_allowed_tenants=["t;2"])


@pytest.mark.parametrize("subscription", ["", "-s", "a;b", "a\nb", "s" * 1025, "a'b", 7])
def test_subscriptions_outside_the_allow_list(subscription: Any) -> None:
    with pytest.raises(ConfigError, match=r"^AzureCliCredential: subscription is invalid: use only letters"):
        az(subscription=subscription)


def test_other_options_are_checked() -> None:
    for tool in TOOLS:
        for path in ("", "a\x00b", 5):
            with pytest.raises(ConfigError, match=f"^{tool.__name__}: tool_path is invalid"):
                tool(tool_path=path, env={})
        with pytest.raises(ConfigError, match=f"^{tool.__name__}: cache_tokens is invalid"):
            tool(cache_tokens=1, env={})
        with pytest.raises(ConfigError, match="claims is invalid"):
            fetch(tool(env={}), ScriptedIO(), claims=b"{}")  # type: ignore[arg-type]


# -- §5.3: claims --


def test_claims_to_az_give_the_login_command_and_run_nothing() -> None:
    io = ScriptedIO()
    with pytest.raises(NotConfiguredError) as caught:
        fetch(az(), io, claims=CLAIMS, tenant="t2")
    assert io.seen == []
    expected = (
        f"az login --claims-challenge {CLAIMS_B64} --tenant t2 --scope https://management.azure.com/.default"
    )
    assert caught.value.login_command == expected  # the §5.3 vector
    assert str(caught.value) == (
        f"AzureCliCredential (az): the request needs claims the Azure CLI cannot pass on; run `{expected}`, "
        "then try again"
    )
    assert az_login_command(CLAIMS, "", "s") == f"az login --claims-challenge {CLAIMS_B64} --scope s"


def test_claims_to_pwsh_give_the_connect_command_and_run_nothing() -> None:
    io = ScriptedIO()
    with pytest.raises(NotConfiguredError) as caught:
        fetch(pwsh(tenant_id="t2"), io, claims=CLAIMS)
    assert io.seen == []
    assert caught.value.login_command == f"Connect-AzAccount -ClaimsChallenge {CLAIMS_B64} -Tenant t2"
    assert f"run `Connect-AzAccount -ClaimsChallenge {CLAIMS_B64} -Tenant t2`" in str(caught.value)
    assert connect_command(CLAIMS, "") == f"Connect-AzAccount -ClaimsChallenge {CLAIMS_B64}"


def test_empty_claims_are_no_claims() -> None:
    io = ScriptedIO(done(ft.az_output(TOKEN)))
    fetch(az(), io, claims="")
    assert len(commands(io)) == 1


# -- §7: the cache --


@pytest.mark.parametrize("tool", TOOLS)
def test_a_thousand_calls_run_the_tool_once(tool: type[Any]) -> None:
    credential = tool(env={})
    reply = {"az": ft.az_output(TOKEN), "azd": ft.azd_output(TOKEN), "pwsh": ft.pwsh_output(TOKEN)}[tool.tool]
    io = ScriptedIO(done(reply))
    for i in range(1000):
        assert fetch(credential, io, now=NOW + i).token == TOKEN
    assert len(io.seen) == 1
    assert len(credential.token_cache) == 1


@pytest.mark.parametrize("tool", TOOLS)
def test_cache_tokens_false_runs_the_tool_every_call(tool: type[Any]) -> None:
    credential = tool(env={}, cache_tokens=False)
    reply = {"az": ft.az_output(TOKEN), "azd": ft.azd_output(TOKEN), "pwsh": ft.pwsh_output(TOKEN)}[tool.tool]
    io = ScriptedIO(done(reply), done(reply), done(reply))
    for _ in range(3):
        assert fetch(credential, io).token == TOKEN
    assert len(io.seen) == 3
    assert len(credential.token_cache) == 0
    assert credential.token_cache.serve(((SCOPE,), None, False), NOW) is None


def test_the_cache_key() -> None:
    call = TokenCall(("b", "a", "b"), None, "t9", True)
    with pytest.raises(ConfigError, match="exactly one scope is required, not 3"):
        az().cache_key(call)
    assert az(subscription="s 1").cache_key(TokenCall(("a",), None, "t9", True)) == (
        ("a",),
        "t9",
        False,
        "az:s 1",
    )
    assert az().cache_key(TokenCall(("a",), None, None, False)) == (("a",), "", False, "az:")
    assert azd().cache_key(call) == (("a", "b"), "t9", False, "azd:")
    assert pwsh().cache_key(TokenCall(("a",), None, None, False)) == (("a",), "", False, "pwsh:")


def test_a_token_near_expiry_is_fetched_again() -> None:
    credential = az()
    soon = int(NOW) + 600
    io = ScriptedIO(
        done(ft.az_output("first", expires_on=soon)), done(ft.az_output("second", expires_on=soon + 3600))
    )
    assert fetch(credential, io).token == "first"
    assert fetch(credential, io, now=NOW + 100).token == "first"
    assert fetch(credential, io, now=NOW + 301).token == "second"  # inside the 5-minute margin (§7.2)
    assert len(io.seen) == 2


# -- what a credential shows --


def test_repr_and_developer_tool() -> None:
    assert repr(az()) == "AzureCliCredential(tenant_id='', process_timeout=10)"
    assert repr(
        az(tenant_id="t", subscription="s", process_timeout=2.5, tool_path="/x/az", cache_tokens=False)
    ) == (
        "AzureCliCredential(tenant_id='t', subscription='s', process_timeout=2.5, tool_path='/x/az', "
        "cache_tokens=False)"
    )
    assert repr(azd()) == "AzureDeveloperCliCredential(tenant_id='', process_timeout=10)"
    assert repr(pwsh(tenant_id="t")) == "AzurePowerShellCredential(tenant_id='t', process_timeout=10)"
    assert all(tool.developer_tool is True for tool in TOOLS)


def test_the_token_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="azid")
    credential = pwsh()
    info = fetch(credential, ScriptedIO(done(ft.pwsh_output(OPAQUE))))
    assert OPAQUE not in repr(credential) + repr(info)
    assert "running pwsh -NoProfile -NonInteractive -EncodedCommand …" in caplog.text
    fetch(az(), ScriptedIO(done(ft.az_output(OPAQUE))))
    assert (
        "running az account get-access-token --output json --resource https://management.azure.com"
        in caplog.text
    )
    assert OPAQUE not in caplog.text


def test_the_environment_defaults_to_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZID_PROCESS_TIMEOUT", "7")
    monkeypatch.setenv("SYSTEMROOT", "C:\\Windows")
    io = ScriptedIO(done(ft.azd_output(TOKEN)))
    fetch(AzureDeveloperCliCredential(), io)  # env and platform: this process's
    assert commands(io)[0].timeout == 7.0
    assert commands(io)[0].cwd == ("C:\\Windows" if sys.platform == "win32" else "/bin")


@pytest.mark.parametrize("cache_tokens", [True, False])
def test_pickling_keeps_the_options_and_drops_the_cache(cache_tokens: bool) -> None:
    credential = az(subscription="s", cache_tokens=cache_tokens)
    fetch(credential, ScriptedIO(done(ft.az_output(TOKEN))))
    copy = pickle.loads(pickle.dumps(credential))
    assert repr(copy) == repr(credential)
    assert len(copy.token_cache) == 0
    io = ScriptedIO(done(ft.az_output(TOKEN)))
    fetch(copy, io)
    assert len(io.seen) == 1
    assert len(copy.token_cache) == (1 if cache_tokens else 0)


# -- §8: whatever a tool prints, only AzidError escapes --


@settings(max_examples=150, deadline=None)
@given(
    tool=st.sampled_from(TOOLS),
    code=st.integers(min_value=-5, max_value=10000),
    stdout=st.one_of(
        st.binary(max_size=200),
        st.builds(lambda t, e: f"azsdk%{t}%{e}".encode(), st.text(max_size=20), st.text(max_size=12)),
        st.builds(
            lambda v: json.dumps(v).encode(),
            st.dictionaries(
                st.sampled_from(["accessToken", "token", "expires_on", "expiresOn", "error"]),
                st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30)),
            ),
        ),
    ),
    stderr=st.binary(max_size=200),
)
def test_only_azid_errors_escape(tool: type[Any], code: int, stdout: bytes, stderr: bytes) -> None:
    credential = (
        tool(env={}, naive_to_epoch=zone_reader("UTC")) if tool is AzureCliCredential else tool(env={})
    )
    try:
        info = fetch(credential, ScriptedIO(CommandResult(code, stdout, stderr)))
    except AzidError as error:
        assert str(error).startswith(tool.__name__)
    else:
        assert code == 0
        assert info.expires_on > NOW
