"""The `azid` command line: every subcommand, its output and exit code, and its one-line errors;
`azid token --emulator` also through the installed console script, as a user runs it."""

from __future__ import annotations

import io
import json
import os
import runpy
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

import azid
from azid.cli import main
from azid.emulator import CLIENT_ID, TENANT_ID
from azid.server import EmulatorServer
from azid_core.effects import HttpResponse

if TYPE_CHECKING:
    from azid.pytest_plugin import AzidEmulator
    from azid_core.effects import HttpRequest

MANAGEMENT = "https://management.azure.com/.default"
CP1 = '{"access_token": {"xms_cc": {"values": ["CP1"]}}}'
# What §6.2's members read: cleared for the tests that fix the environment.
PREFIXES = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code = main(list(argv), stdout=out, stderr=err)
    finally:
        sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(PREFIXES):
            monkeypatch.delenv(name)


# -- azid token --emulator --


def test_token_from_the_emulator_as_json() -> None:
    code, out, err = run("token", "--emulator", MANAGEMENT, "--output", "json")
    assert (code, err) == (0, "")
    record = json.loads(out)
    assert set(record) == {
        "accessToken",
        "expires_on",
        "expiresOn",
        "refresh_on",
        "tokenType",
        "scopes",
        "credential",
    }
    assert record["credential"] == "ClientSecretCredential"
    assert record["tokenType"] == "Bearer"
    assert record["scopes"] == [MANAGEMENT]
    claims = jwt.decode(record["accessToken"], options={"verify_signature": False})
    assert (claims["aud"], claims["tid"], claims["appid"]) == (
        "https://management.azure.com",
        TENANT_ID,
        CLIENT_ID,
    )
    assert record["expires_on"] == claims["exp"]
    assert record["expiresOn"].endswith(" UTC")


def test_token_from_the_emulator_as_text_with_tenant_and_claims_and_a_progress_line() -> None:
    out, err = io.StringIO(), Terminal()
    code = main(["token", "--emulator", "--tenant", TENANT_ID, "--claims", CP1], stdout=out, stderr=err)
    assert code == 0
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["token", "expires_on", "refresh_on", "credential"]
    assert lines[2] == "refresh_on: none"
    assert lines[3] == "credential: ClientSecretCredential"
    claims = jwt.decode(lines[0].removeprefix("token: "), options={"verify_signature": False})
    assert claims["aud"] == "https://management.azure.com"  # the default scope
    assert claims["xms_cc"] == ["CP1"]
    assert err.getvalue() == "azid: getting a token...\r\x1b[K"


def test_no_progress_line_when_stderr_is_not_a_terminal() -> None:
    code, _, err = run("token", "--emulator")
    assert (code, err) == (0, "")


def test_the_console_script_in_a_subprocess() -> None:
    script = shutil.which("azid")
    assert script is not None, "the azid console script is not installed in this environment"
    done = subprocess.run(
        [script, "token", "--emulator", MANAGEMENT, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout)["credential"] == "ClientSecretCredential"


def test_python_dash_m_azid(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["azid", "decode", "not-a-token"])
    with pytest.raises(SystemExit) as caught:
        # run_path: the assertion rewriter holds the azid package (the plugin's); run_module refuses it.
        runpy.run_path(str(Path(azid.__file__).with_name("__main__.py")), run_name="__main__")
    assert caught.value.code == 2
    assert capsys.readouterr().err == "azid: not a JWT: Not enough segments\n"


# -- azid token: errors --


def test_a_bad_scope_is_a_usage_error() -> None:
    assert run("token", "--emulator", "bad scope") == (
        2,
        "",
        "azid: ClientSecretCredential: scopes is invalid: 'bad scope' is empty or holds whitespace or "
        "control characters\n",
    )


def test_an_unknown_credential_is_a_usage_error() -> None:
    assert run("token", "--credential", "Nope") == (
        2,
        "",
        "azid: unknown credential 'Nope'; choose one of: DefaultAzureCredential, EnvironmentCredential, "
        "ManagedIdentityCredential, WorkloadIdentityCredential, AzureCliCredential, "
        "AzureDeveloperCliCredential, AzurePowerShellCredential\n",
    )


def test_credential_and_emulator_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["token", "--emulator", "--credential", "EnvironmentCredential"])
    assert caught.value.code == 2
    assert "argument --credential: not allowed with argument --emulator" in capsys.readouterr().err


def test_a_chain_with_nothing_available_fails_in_one_line(
    bare_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
    code, out, err = run("token")
    assert (code, out) == (1, "")
    assert err == (
        "azid: DefaultAzureCredential could not get a token. Attempts, in order: EnvironmentCredential: "
        "unavailable: EnvironmentCredential: the environment configures no credential (set: none; missing: "
        "AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, "
        "AZURE_USERNAME, AZURE_PASSWORD). Set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or "
        "AZURE_CLIENT_CERTIFICATE_PATH; or AZURE_CLIENT_ID, AZURE_USERNAME and AZURE_PASSWORD\n"
    )


# -- azid token from the environment (the fixture points it at the emulator) --


def test_token_from_the_environment_names_the_serving_credential(azid_emulator: AzidEmulator) -> None:
    code, out, err = run("token", "https://vault.azure.net/.default", "--output", "json")
    assert (code, err) == (0, "")
    record = json.loads(out)
    assert record["credential"] == "ClientSecretCredential"  # EnvironmentCredential's, in the chain
    assert azid_emulator.emulator.decode(record["accessToken"])["aud"] == "https://vault.azure.net"


def test_a_refused_secret_is_an_authentication_failure(
    azid_emulator: AzidEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "wrong-secret-value")
    code, out, err = run("token", "--credential", "EnvironmentCredential")
    assert (code, out) == (1, "")
    assert err.startswith("azid: ClientSecretCredential: ")
    assert "AADSTS7000215" in err
    assert err.count("\n") == 1
    assert "wrong-secret-value" not in err


# -- azid explain --


def test_explain_for_a_fixed_environment(bare_environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", "tenant-one")
    monkeypatch.setenv("AZURE_CLIENT_ID", "app-0001")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "not-shown-anywhere")
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:1")
    code, out, err = run("explain")
    assert (code, err) == (0, "")
    assert "not-shown-anywhere" not in out
    assert out == (
        "1. EnvironmentCredential: configured: client secret (ClientSecretCredential); set: AZURE_TENANT_ID, "
        "AZURE_CLIENT_ID, AZURE_CLIENT_SECRET\n"
        "2. WorkloadIdentityCredential: not configured: missing AZURE_FEDERATED_TOKEN_FILE\n"
        "3. ManagedIdentityCredential: configured: source imds at "
        "http://127.0.0.1:1/metadata/identity/oauth2/token; identity: client_id=app-0001; no IMDS probe\n"
        "4. AzureCliCredential: configured: runs `az` at get_token (not looked for now); timeout 10 s\n"
        "5. AzurePowerShellCredential: configured: runs `pwsh` at get_token (not looked for now); "
        "timeout 10 s\n"
        "6. AzureDeveloperCliCredential: configured: runs `azd` at get_token (not looked for now); "
        "timeout 10 s\n"
        "7. InteractiveBrowserCredential: excluded: exclude_interactive_browser_credential defaults to True\n"
    )


# -- azid decode --


def rsa_token(kid: str) -> tuple[str, dict[str, object]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(
        {"aud": "api://x", "exp": 1_800_000_000, "iat": 1_799_996_400}, key, "RS256", {"kid": kid}
    )
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return token, {"keys": [{**public, "kid": kid, "use": "sig"}]}


def test_decode_without_verification_says_so() -> None:
    token, _ = rsa_token("k1")
    code, out, err = run("decode", stdin=token + "\n")
    assert (code, err) == (0, "")
    assert out.endswith(
        "times:\n  iat: 2027-01-15 07:00:00 UTC\n  exp: 2027-01-15 08:00:00 UTC\n"
        "signature: NOT verified (pass --jwks URL to verify it)\n"
    )
    assert json.loads(out[out.index("{") : out.index("}") + 1]) == {"alg": "RS256", "kid": "k1", "typ": "JWT"}


def test_decode_verifies_with_a_jwks_and_refuses_another_key() -> None:
    token, jwks = rsa_token("k1")
    other, _ = rsa_token("k1")
    body = json.dumps(jwks).encode()

    def serve(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, (), body) if request.url.endswith("/keys") else HttpResponse(404, (), b"")

    with EmulatorServer(serve, tls=False) as server:
        code, out, err = run("decode", token, "--jwks", server.url + "/keys")
        assert (code, err) == (0, "")
        assert out.endswith(f"signature: verified with {server.url}/keys\n")
        assert run("decode", other, "--jwks", server.url + "/keys") == (
            1,
            "",
            "azid: signature not verified: Signature verification failed\n",
        )
        assert run("decode", "-", "--jwks", server.url + "/gone", stdin=token) == (
            1,
            "",
            "azid: cannot fetch the JWKS: HTTP 404\n",
        )
        unknown, _ = rsa_token("k2")
        assert run("decode", unknown, "--jwks", server.url + "/keys") == (
            1,
            "",
            "azid: signature not verified: no key 'k2' in the JWKS\n",
        )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    code, _, err = run("decode", token, "--jwks", f"http://127.0.0.1:{closed}/keys")
    assert code == 1
    assert err.startswith("azid: cannot fetch the JWKS: ")
    assert run("decode", token, "--jwks", "http://example.com/keys") == (
        2,
        "",
        "azid: --jwks must be an https URL, or http on 127.0.0.1: http://example.com/keys\n",
    )


def test_decode_a_bad_token() -> None:
    assert run("decode", "abc.def") == (2, "", "azid: not a JWT: Not enough segments\n")


def test_decode_a_token_without_times() -> None:
    token = jwt.encode({"sub": "x"}, "a-key-of-thirty-two-bytes-or-more!!", "HS256")
    code, out, _ = run("decode", token)
    assert code == 0
    assert "times:" not in out
    assert out.endswith(
        'claims:\n{\n  "sub": "x"\n}\nsignature: NOT verified (pass --jwks URL to verify it)\n'
    )


# -- azid emulator --


@pytest.mark.parametrize("tls", [True, False])
def test_emulator_prints_the_exports_and_serves_until_ctrl_c(tls: bool) -> None:
    out = io.StringIO()

    def wait() -> None:
        exports = dict(line.removeprefix("export ").split("=", 1) for line in out.getvalue().splitlines()[1:])
        assert (exports.get("SSL_CERT_FILE") is not None) is tls
        assert exports.get("REQUESTS_CA_BUNDLE") == exports.get("SSL_CERT_FILE")
        url = exports["AZURE_AUTHORITY_HOST"]
        assert exports["AZURE_POD_IDENTITY_AUTHORITY_HOST"] == url + "/imds"
        reply = requests.post(
            f"{url}/{exports['AZURE_TENANT_ID']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": exports["AZURE_CLIENT_ID"],
                "client_secret": exports["AZURE_CLIENT_SECRET"],
                "scope": MANAGEMENT,
            },
            verify=exports.get("SSL_CERT_FILE", True),
            timeout=5,
        )
        assert reply.status_code == 200
        raise KeyboardInterrupt

    code = main(["emulator", *(["--tls"] if tls else [])], stdout=out, stderr=io.StringIO(), wait=wait)
    assert code == 0
    assert out.getvalue().startswith("# azid emulator at http")


def test_emulator_on_a_taken_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert run("emulator", "--port", str(port)) == (
            1,
            "",
            f"azid: cannot listen on 127.0.0.1:{port}: Address already in use\n",
        )


@pytest.mark.parametrize("command", ["token", "explain", "decode", "emulator"])
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([command, "--help"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: azid {command} ")


def test_no_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err


def test_decode_verifies_an_emulator_token_against_its_published_jwks(azid_emulator: AzidEmulator) -> None:
    code, out, _ = run("token", "--output", "json")
    token = json.loads(out)["accessToken"]
    jwks = f"{azid_emulator.url}/{TENANT_ID}/discovery/v2.0/keys"
    code, out, err = run("decode", token, "--jwks", jwks)
    assert (code, err) == (0, "")
    assert out.endswith(f"signature: verified with {jwks}\n")
    # Another emulator's token carries another key.
    _, other, _ = run("token", "--emulator", "--output", "json")
    assert run("decode", json.loads(other)["accessToken"], "--jwks", jwks)[0] == 1
