"""The developer-tool credentials on all seven adapter paths, with fake `az`, `azd` and `pwsh` scripts
(azid_core.testing.fake_tools) on a temporary PATH that holds nothing else, so a real tool on this
machine never runs: §5.1's exact argv, added environment, working directory and null stdin; one run
for 1,000 calls and for 32 concurrent callers, a run per call without the cache; §5.3 failures.
"""

from __future__ import annotations

import base64
import os
import time
from typing import TYPE_CHECKING, Any

import pytest

from azid_core.devtools.az import AzureCliCredential
from azid_core.devtools.azd import AzureDeveloperCliCredential
from azid_core.devtools.pwsh import AzurePowerShellCredential, script
from azid_core.errors import ConfigError, CredentialUnavailableError, NotConfiguredError
from azid_core.testing.fake_tools import (
    AZ_NOT_LOGGED_IN,
    AZD_NOT_LOGGED_IN,
    PWSH_NOT_LOGGED_IN,
    az_output,
    azd_output,
    fake_jwt,
    fake_tool_script,
    pwsh_output,
)
from tests.fake_tools import install, records

if TYPE_CHECKING:
    from pathlib import Path

    from azid_core.devtools.common import DeveloperToolCredential
    from tests.conftest import FakeClock
    from tests.paths import Path as AdapterPath

ARM = "https://management.azure.com/.default"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SUBSCRIPTION = "my subscription-1"
AZ_EXPIRES, AZD_EXPIRES, PWSH_EXPIRES = 1893553445, 2147385600, 1893553999
BIN_CWD = os.path.realpath("/bin")  # §5.1's working directory, as the tool's os.getcwd() reads it


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory that is the whole PATH; the tool variables the fakes record are unset."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    for name in ("AZURE_CORE_NO_COLOR", "NO_COLOR", "AZID_PROCESS_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return bin_dir


def _fake(bin_dir: Path, name: str, **script: Any) -> Path:
    """Install a fake `name` that records to `<name>.jsonl` beside the bin directory; the log's path."""
    log = bin_dir.parent / f"{name}.jsonl"
    install(bin_dir, name, fake_tool_script(record_path=str(log), **script))
    return log


def _get(
    path: AdapterPath, core: DeveloperToolCredential, clock: FakeClock, *scopes: str, **kwargs: Any
) -> Any:
    cred = path.credential(core, clock)
    try:
        return path.get_token(cred, *scopes, **kwargs)
    finally:
        path.close(cred)


def _env(bin_dir: Path, **added: str) -> dict[str, str | None]:
    return {
        "AZURE_CORE_NO_COLOR": None,
        "NO_COLOR": None,
        "AZID_PROCESS_TIMEOUT": None,
        "PATH": str(bin_dir),
    } | added


def _ran_like_a_tool(record: dict[str, Any]) -> None:
    assert record["cwd"] == BIN_CWD
    assert record["stdin_is_null"] is True
    assert record["pgid"] == record["pid"]  # a process group of its own, the one a timeout kills


@pytest.mark.parametrize(
    ("options", "extra"),
    [
        ({}, []),
        (
            {"tenant_id": TENANT, "subscription": SUBSCRIPTION},
            ["--tenant", TENANT, "--subscription", SUBSCRIPTION],
        ),
    ],
    ids=["plain", "tenant-and-subscription"],
)
def test_az_argv_environment_and_token(
    path: AdapterPath, tools: Path, clock: FakeClock, options: dict[str, Any], extra: list[str]
) -> None:
    token = fake_jwt("az")
    log = _fake(tools, "az", stdout=az_output(token, expires_on=AZ_EXPIRES))
    got = _get(path, AzureCliCredential(env={}, **options), clock, ARM)
    assert (got.token, got.expires_on) == (token, AZ_EXPIRES)
    (record,) = records(log)
    resource = ["--resource", "https://management.azure.com"]
    assert record["argv"] == [
        str(tools / "az"),
        "account",
        "get-access-token",
        "--output",
        "json",
        *resource,
        *extra,
    ]
    assert record["env"] == _env(tools, AZURE_CORE_NO_COLOR="true")
    _ran_like_a_tool(record)


def test_azd_argv_environment_and_token(path: AdapterPath, tools: Path, clock: FakeClock) -> None:
    token = fake_jwt("azd")
    log = _fake(tools, "azd", stdout=azd_output(token, expires_on="2038-01-18T00:00:00Z"))
    core = AzureDeveloperCliCredential(tenant_id=TENANT, env={})
    got = _get(path, core, clock, ARM, "https://vault.azure.net/.default")
    assert (got.token, got.expires_on) == (token, AZD_EXPIRES)  # `Z` is UTC (§5.2)
    (record,) = records(log)
    assert record["argv"] == [
        str(tools / "azd"),
        *("auth", "token", "--output", "json", "--no-prompt"),
        *("--scope", ARM, "--scope", "https://vault.azure.net/.default"),
        *("--tenant-id", TENANT),
    ]
    assert record["env"] == _env(tools, NO_COLOR="true")
    _ran_like_a_tool(record)


def test_pwsh_argv_environment_and_token(path: AdapterPath, tools: Path, clock: FakeClock) -> None:
    token = fake_jwt("pwsh")
    log = _fake(tools, "pwsh", stdout=pwsh_output(token, PWSH_EXPIRES), stderr="#< CLIXML\r\n<Objs/>")
    got = _get(path, AzurePowerShellCredential(tenant_id=TENANT, env={}), clock, ARM)
    assert (got.token, got.expires_on) == (token, PWSH_EXPIRES)
    (record,) = records(log)
    encoded = base64.b64encode(script("https://management.azure.com", TENANT).encode("utf-16-le")).decode()
    assert record["argv"] == [
        str(tools / "pwsh"),
        "-NoProfile",
        "-NonInteractive",
        "-EncodedCommand",
        encoded,
    ]
    assert "'https://management.azure.com'" in base64.b64decode(encoded).decode("utf-16-le")
    assert record["env"] == _env(tools)  # pwsh gets nothing added
    _ran_like_a_tool(record)


def test_tool_path_runs_that_file_whatever_path_says(
    path: AdapterPath, tools: Path, clock: FakeClock
) -> None:
    elsewhere = tools.parent / "elsewhere"
    elsewhere.mkdir()
    log = tools.parent / "az.jsonl"
    install(elsewhere, "my-az", fake_tool_script(stdout=az_output("tok"), record_path=str(log)))
    got = _get(path, AzureCliCredential(tool_path=str(elsewhere / "my-az"), env={}), clock, ARM)
    assert got.token == "tok"
    assert records(log)[0]["argv"][:3] == [str(elsewhere / "my-az"), "account", "get-access-token"]


def test_a_thousand_calls_run_az_once(path: AdapterPath, tools: Path, clock: FakeClock) -> None:
    log = _fake(tools, "az", stdout=az_output(fake_jwt("az")))
    cred = path.credential(AzureCliCredential(env={}), clock)
    if path.is_async:

        async def thousand() -> set[str]:
            return {(await cred.get_token(ARM)).token for _ in range(1000)}

        tokens = path.call(thousand)
    else:
        tokens = {cred.get_token(ARM).token for _ in range(1000)}
    path.close(cred)
    assert tokens == {fake_jwt("az")}
    assert len(records(log)) == 1


def test_thirty_two_concurrent_callers_share_one_az_run(
    path: AdapterPath, tools: Path, clock: FakeClock
) -> None:
    # The fake takes 0.2 s, so every caller arrives while the one run is in flight.
    log = _fake(tools, "az", stdout=az_output(fake_jwt("az")), sleep=0.2)
    cred = path.credential(AzureCliCredential(env={}), clock)
    results = path.many(cred, [(ARM,)] * 32)
    path.close(cred)
    assert {getattr(result, "token", result) for result in results} == {fake_jwt("az")}
    assert len(records(log)) == 1


def test_without_the_cache_every_call_runs_the_tool(path: AdapterPath, tools: Path, clock: FakeClock) -> None:
    log = _fake(tools, "azd", stdout=azd_output(fake_jwt("azd")))
    cred = path.credential(AzureDeveloperCliCredential(cache_tokens=False, env={}), clock)
    for _ in range(3):
        assert path.get_token(cred, ARM).token == fake_jwt("azd")
    path.close(cred)
    assert len(records(log)) == 3


@pytest.mark.parametrize(
    ("name", "make", "output", "login"),
    [
        ("az", AzureCliCredential, {"stderr": AZ_NOT_LOGGED_IN}, "az login"),
        ("azd", AzureDeveloperCliCredential, {"stdout": AZD_NOT_LOGGED_IN}, "azd auth login"),
        ("pwsh", AzurePowerShellCredential, {"stderr": PWSH_NOT_LOGGED_IN}, "Connect-AzAccount"),
    ],
)
def test_not_signed_in_is_not_configured_with_the_login_command(
    path: AdapterPath,
    tools: Path,
    clock: FakeClock,
    name: str,
    make: type[DeveloperToolCredential],
    output: dict[str, str],
    login: str,
) -> None:
    log = _fake(tools, name, exit_code=1, **output)
    with pytest.raises(NotConfiguredError) as info:
        _get(path, make(env={}), clock, ARM)  # type: ignore[call-arg]
    assert info.value.login_command == login
    assert str(info.value).startswith(make.__name__)
    assert len(records(log)) == 1


def test_a_missing_tool_is_unavailable_and_names_it(path: AdapterPath, tools: Path, clock: FakeClock) -> None:
    with pytest.raises(CredentialUnavailableError) as info:
        _get(path, AzureCliCredential(env={}), clock, ARM)
    assert not isinstance(info.value, NotConfiguredError)
    assert "Azure CLI not found on PATH" in str(info.value)
    assert "'az'" in str(info.value)


def test_a_hanging_tool_is_killed_at_process_timeout(
    path: AdapterPath, tools: Path, clock: FakeClock
) -> None:
    log = _fake(tools, "az", stdout=az_output("tok"), sleep=30)
    started = time.monotonic()
    with pytest.raises(CredentialUnavailableError, match="process_timeout or AZID_PROCESS_TIMEOUT"):
        _get(path, AzureCliCredential(process_timeout=0.5, env={}), clock, ARM)
    assert time.monotonic() - started < 3
    (record,) = records(log)
    with pytest.raises(ProcessLookupError):  # reaped: the pid and its group are gone
        os.killpg(record["pgid"], 0)


def test_a_scope_a_shell_would_read_runs_nothing(path: AdapterPath, tools: Path, clock: FakeClock) -> None:
    log = _fake(tools, "az", stdout=az_output("tok"))
    for scope in ("x; rm -rf ~", "https://vault.azure.net/.default\n--tenant evil"):
        with pytest.raises(ConfigError, match="scopes is invalid"):
            _get(path, AzureCliCredential(env={}), clock, scope)
    assert records(log) == []
