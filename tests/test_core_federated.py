"""WorkloadIdentityCredential and AzurePipelinesCredential as core objects, and the emulator's
federated side (PROTOCOL.md §2, §2.3, §2.4, §0.5 policy S, §7.4)."""

from __future__ import annotations

import json
import logging
import pickle
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import pytest

from azid_core import blocking
from azid_core.acquire import TokenCall
from azid_core.drive import run
from azid_core.effects import FileContent, HttpRequest, HttpResponse, ReadFile, Sleep
from azid_core.entra.assertion import JWT_BEARER
from azid_core.entra.federated import AzurePipelinesCredential, WorkloadIdentityCredential
from azid_core.errors import (
    AuthError,
    AzidError,
    ConfigError,
    CredentialUnavailableError,
    NotConfiguredError,
    ProtocolError,
    TransportError,
)
from azid_core.testing import EntraEmulator, ScriptedIO
from azid_core.testing.federated import PIPELINES_ISSUER
from azid_core.wire import SERVICE_POLICY

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from azid_core.effects import Effect, Reply
    from azid_core.entra.confidential import EntraCredential
    from azid_core.tokens import AccessTokenInfo

NOW = 1_700_000_000.0
TENANT, CLIENT = "tenant-a", "client-a"
SCOPE = "https://vault.azure.net/.default"
TOKEN_FILE = "/var/run/secrets/azure/tokens/azure-identity-token"
FED_1 = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwb2QtMSJ9.c2lnLTE"
FED_2 = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwb2QtMiJ9.c2lnLTI"
SYSTEM_TOKEN = "sys-T0ken.value-0123456789"
OIDC_TOKEN = "eyJ0eXAiOiJKV1QifQ.eyJpc3MiOiJ2c3Rva2VuIn0.b2lkYw"
CONNECTION = "sc-0001"
OIDC_URI = "https://dev.azure.com/org/_apis/distributedtask/hubs/build/plans/p/jobs/j/oidctoken"
REQUEST_ID = "00010203-0405-4607-8809-0a0b0c0d0e0f"
PYTHON = ".".join(str(part) for part in sys.version_info[:3])
CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
TOKEN_REPLY = HttpResponse(200, (), json.dumps({"access_token": "at-1", "expires_in": 3600}).encode())
EXPIRED = HttpResponse(
    400,
    (),
    json.dumps(
        {
            "error": "invalid_client",
            "error_description": "AADSTS700024: Client assertion is not within its valid time range.",
            "error_codes": [700024],
        }
    ).encode(),
)


def entropy(size: int) -> bytes:
    return bytes(range(size))


def workload(**kwargs: Any) -> WorkloadIdentityCredential:
    kwargs.setdefault("env", {})
    kwargs.setdefault("entropy", entropy)
    kwargs.setdefault("tenant_id", TENANT)
    kwargs.setdefault("client_id", CLIENT)
    kwargs.setdefault("token_file_path", TOKEN_FILE)
    return WorkloadIdentityCredential(**kwargs)


def pipelines(**kwargs: Any) -> AzurePipelinesCredential:
    kwargs.setdefault("env", {"SYSTEM_OIDCREQUESTURI": OIDC_URI})
    kwargs.setdefault("entropy", entropy)
    kwargs.setdefault("tenant_id", TENANT)
    kwargs.setdefault("client_id", CLIENT)
    kwargs.setdefault("service_connection_id", CONNECTION)
    kwargs.setdefault("system_access_token", SYSTEM_TOKEN)
    return AzurePipelinesCredential(**kwargs)


def fetch(
    cred: EntraCredential, *replies: Reply | BaseException, now: float = NOW, scope: str = SCOPE
) -> tuple[AccessTokenInfo, ScriptedIO]:
    io = ScriptedIO(*replies)
    call = TokenCall((scope,), None, None, False)
    info = run(cred.fetch_flow(call, cred.cache_key(call), now), io)
    assert io.unused == 0
    return info, io


def fails(
    cred: EntraCredential, *replies: Reply | BaseException, now: float = NOW
) -> tuple[AzidError, ScriptedIO]:
    io = ScriptedIO(*replies)
    call = TokenCall((SCOPE,), None, None, False)
    with pytest.raises(AzidError) as caught:
        run(cred.fetch_flow(call, cred.cache_key(call), now), io)
    assert io.unused == 0
    return caught.value, io


def content(data: bytes | None, mtime: int) -> FileContent:
    return FileContent(data, len(data or b""), mtime)


def reads(io: ScriptedIO) -> list[ReadFile]:
    return [effect for effect in io.seen if isinstance(effect, ReadFile)]


def posts(io: ScriptedIO) -> list[HttpRequest]:
    return [effect for effect in io.seen if isinstance(effect, HttpRequest)]


def sent_assertion(request: Effect) -> str:
    assert isinstance(request, HttpRequest)
    return dict(parse_qsl(request.body.decode()))["client_assertion"]


# -- WorkloadIdentityCredential: configuration (§2.3) --


def test_options_win_over_the_environment() -> None:
    env = {
        "AZURE_TENANT_ID": "env-tenant",
        "AZURE_CLIENT_ID": "env-client",
        "AZURE_FEDERATED_TOKEN_FILE": "/env",
    }
    cred = WorkloadIdentityCredential(tenant_id=TENANT, client_id=CLIENT, token_file_path=TOKEN_FILE, env=env)
    key = cred.cache_key(TokenCall((SCOPE,), None, None, False))
    assert key == ((SCOPE,), TENANT, False, f"workload:https://login.microsoftonline.com:{CLIENT}")
    assert repr(cred) == (
        f"WorkloadIdentityCredential(tenant_id='{TENANT}', client_id='{CLIENT}', "
        f"authority='https://login.microsoftonline.com', token_file_path='{TOKEN_FILE}')"
    )
    from_env = WorkloadIdentityCredential(env=env)
    assert repr(from_env) == (
        "WorkloadIdentityCredential(tenant_id='env-tenant', client_id='env-client', "
        "authority='https://login.microsoftonline.com', token_file_path='/env')"
    )


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", "proc-tenant")
    monkeypatch.setenv("AZURE_CLIENT_ID", "proc-client")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", "/proc-file")
    assert "proc-tenant" in repr(WorkloadIdentityCredential())


def test_everything_missing_is_listed_in_one_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        WorkloadIdentityCredential(env={"AZURE_CLIENT_ID": "c"})
    assert str(caught.value) == (
        "WorkloadIdentityCredential: missing tenant_id (AZURE_TENANT_ID), token_file_path "
        "(AZURE_FEDERATED_TOKEN_FILE): pass the option or set the variable"
    )
    with pytest.raises(ConfigError, match=r"missing client_id \(AZURE_CLIENT_ID\):"):
        workload(client_id="")


def test_base_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="tenant_id"):
        workload(tenant_id="bad tenant")
    with pytest.raises(ConfigError, match="token_file_path"):
        workload(token_file_path="   ")


# -- WorkloadIdentityCredential: the token file (§2.3) --


def test_first_miss_reads_the_file_and_sends_the_assertion_form() -> None:
    info, io = fetch(workload(), content(b"  " + FED_1.encode() + b"\n", 11), TOKEN_REPLY)
    read, request = io.seen
    assert read == ReadFile(TOKEN_FILE, max_bytes=65536, unless_mtime_ns=None)
    assert isinstance(request, HttpRequest)
    assert request.url == f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
    assert parse_qsl(request.body.decode()) == [
        ("client_assertion", FED_1),
        ("client_assertion_type", JWT_BEARER),
        ("client_id", CLIENT),
        ("grant_type", "client_credentials"),
        ("scope", SCOPE),
    ]
    assert (request.tls_server_name, request.ca_pem) == (None, None)
    assert info.token == "at-1"


def test_claims_follow_the_scope() -> None:
    io = ScriptedIO(content(FED_1.encode(), 11), TOKEN_REPLY)
    call = TokenCall((SCOPE,), None, None, True)
    cred = workload()
    run(cred.fetch_flow(call, cred.cache_key(call), NOW), io)
    assert parse_qsl(posts(io)[0].body.decode())[-1] == (
        "claims",
        '{"access_token": {"xms_cc": {"values": ["CP1"]}}}',
    )


def test_later_misses_reread_only_on_mtime_change_and_fully_after_300_s() -> None:
    cred = workload()
    fetch(cred, content(FED_1.encode(), 11), TOKEN_REPLY)
    # Under 300 s old: ask for the file unless its mtime is unchanged; unchanged → the copy is sent.
    _, io = fetch(cred, content(None, 11), TOKEN_REPLY, now=NOW + 299)
    assert reads(io) == [ReadFile(TOKEN_FILE, max_bytes=65536, unless_mtime_ns=11)]
    assert sent_assertion(posts(io)[0]) == FED_1
    # A new mtime → the rotated token is sent, and the copy's age restarts.
    _, io = fetch(cred, content(FED_2.encode(), 12), TOKEN_REPLY, now=NOW + 299.5)
    assert reads(io) == [ReadFile(TOKEN_FILE, max_bytes=65536, unless_mtime_ns=11)]
    assert sent_assertion(posts(io)[0]) == FED_2
    _, io = fetch(cred, content(None, 12), TOKEN_REPLY, now=NOW + 599)
    assert reads(io)[0].unless_mtime_ns == 12
    # 300 s after the last full read: a full read, whatever the mtime.
    _, io = fetch(cred, content(FED_1.encode(), 12), TOKEN_REPLY, now=NOW + 599.5)
    assert reads(io) == [ReadFile(TOKEN_FILE, max_bytes=65536, unless_mtime_ns=None)]
    assert sent_assertion(posts(io)[0]) == FED_1


def test_expired_assertion_forces_one_full_read_and_one_retry_with_the_new_token() -> None:
    cred = workload()
    fetch(cred, content(FED_1.encode(), 11), TOKEN_REPLY)
    info, io = fetch(cred, content(None, 11), EXPIRED, content(FED_2.encode(), 11), TOKEN_REPLY, now=NOW + 10)
    assert [type(e) for e in io.seen] == [ReadFile, HttpRequest, ReadFile, HttpRequest]
    assert reads(io) == [
        ReadFile(TOKEN_FILE, max_bytes=65536, unless_mtime_ns=11),
        ReadFile(TOKEN_FILE, max_bytes=65536, unless_mtime_ns=None),
    ]
    assert [sent_assertion(r) for r in posts(io)] == [FED_1, FED_2]
    assert info.token == "at-1"
    # The forced read became the copy.
    _, io = fetch(cred, content(None, 11), TOKEN_REPLY, now=NOW + 20)
    assert sent_assertion(posts(io)[0]) == FED_2


def test_expired_assertion_with_unchanged_content_is_raised_without_a_retry() -> None:
    cred = workload()
    error, io = fails(cred, content(FED_1.encode(), 11), EXPIRED, content(b"\n" + FED_1.encode(), 13))
    assert isinstance(error, AuthError)
    assert error.error_codes == (700024,)
    assert [type(e) for e in io.seen] == [ReadFile, HttpRequest, ReadFile]
    assert FED_1 not in str(error)


def test_an_expired_retry_is_not_retried_again() -> None:
    error, io = fails(workload(), content(FED_1.encode(), 11), EXPIRED, content(FED_2.encode(), 12), EXPIRED)
    assert isinstance(error, AuthError)
    assert len(posts(io)) == 2


def test_other_entra_errors_do_not_reread_the_file() -> None:
    refused = HttpResponse(401, (), json.dumps({"error": "invalid_client", "error_codes": [70021]}).encode())
    error, io = fails(workload(), content(FED_1.encode(), 11), refused)
    assert isinstance(error, AuthError)
    assert error.error_codes == (70021,)
    assert len(io.seen) == 2


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (TransportError("file_not_found", f"{TOKEN_FILE} does not exist"), "cannot be read (file_not_found)"),
        (TransportError("file_error", f"{TOKEN_FILE} is not a regular file"), "cannot be read (file_error)"),
        (content(b"", 1), "holds no token"),
        (content(b" \n\t", 1), "holds no token"),
        (content(b"\xff\xfe", 1), "holds no token"),
        (content(b"x" * 65537, 1), "holds more than 65536 bytes"),
    ],
)
def test_a_missing_empty_or_oversized_file_is_not_configured(
    reply: Reply | BaseException, problem: str
) -> None:
    error, io = fails(workload(), reply)
    assert type(error) is NotConfiguredError
    assert str(error).startswith("WorkloadIdentityCredential: the federated token file")
    assert problem in str(error)
    assert len(io.seen) == 1


def test_a_file_of_exactly_the_limit_is_read() -> None:
    _, io = fetch(workload(), content(b"x" * 65536, 1), TOKEN_REPLY)
    assert sent_assertion(posts(io)[0]) == "x" * 65536


@pytest.mark.parametrize("reply", [content(None, 11), HttpResponse(200), None])
def test_a_reply_that_does_not_fit_the_read_is_an_adapter_bug(reply: Reply) -> None:
    error, _ = fails(workload(), reply)
    assert type(error) is AzidError
    assert "the adapter answered ReadFile" in str(error)


def test_transient_state_is_not_pickled() -> None:
    cred = workload()
    fetch(cred, content(FED_1.encode(), 11), TOKEN_REPLY)
    assert cred._token_copy is not None
    state = cred.__getstate__()
    assert "_token_copy" not in state
    assert "_ca_copy" not in state
    copy = pickle.loads(pickle.dumps(cred))
    assert (copy._token_copy, copy._ca_copy) == (None, None)
    assert FED_1.encode() not in pickle.dumps(cred)
    # The copy reads the file again, fully.
    _, io = fetch(copy, content(FED_1.encode(), 11), TOKEN_REPLY)
    assert reads(io)[0].unless_mtime_ns is None


def test_the_token_appears_in_no_message_repr_or_log(caplog: pytest.LogCaptureFixture) -> None:
    cred = workload()
    echo = {"error": "invalid_client", "error_description": f"AADSTS700027: bad {FED_1}", "error_codes": [1]}
    with caplog.at_level(logging.DEBUG, logger="azid"):
        error, _ = fails(cred, content(FED_1.encode(), 11), HttpResponse(400, (), json.dumps(echo).encode()))
        expired, _ = fails(cred, content(None, 11), EXPIRED, content(FED_1.encode(), 12))
    assert "AADSTS700024" in caplog.text
    for text in (str(error), repr(error.__dict__), str(expired), repr(cred), caplog.text):
        assert FED_1 not in text


# -- WorkloadIdentityCredential: the AKS token proxy (§2.3) --

PROXY_ENV = {"AZURE_KUBERNETES_TOKEN_PROXY": "https://proxy.aks.local:8443/token-proxy/"}


def test_the_proxy_takes_the_token_request_with_sni_and_ca_data() -> None:
    env = {
        **PROXY_ENV,
        "AZURE_KUBERNETES_SNI_NAME": "aks-token.example",
        "AZURE_KUBERNETES_CA_DATA": CA_PEM.decode(),
    }
    cred = workload(enable_azure_proxy=True, env=env, authority="https://login.microsoftonline.us/path/")
    _, io = fetch(cred, content(FED_1.encode(), 11), TOKEN_REPLY)
    [request] = posts(io)
    assert request.url == f"https://proxy.aks.local:8443/token-proxy/path/{TENANT}/oauth2/v2.0/token"
    assert request.tls_server_name == "aks-token.example"
    assert request.ca_pem == CA_PEM.strip()
    assert sent_assertion(request) == FED_1


@pytest.mark.parametrize(
    ("proxy", "url"),
    [
        ("https://proxy.local", f"https://proxy.local/{TENANT}/oauth2/v2.0/token"),
        ("HTTPS://proxy.local/a/b", f"https://proxy.local/a/b/{TENANT}/oauth2/v2.0/token"),
        ("https://10.0.0.1:443//", f"https://10.0.0.1:443/{TENANT}/oauth2/v2.0/token"),
    ],
)
def test_proxy_paths_are_joined_with_one_slash(proxy: str, url: str) -> None:
    cred = workload(enable_azure_proxy=True, env={"AZURE_KUBERNETES_TOKEN_PROXY": proxy})
    _, io = fetch(cred, content(FED_1.encode(), 11), TOKEN_REPLY)
    assert posts(io)[0].url == url
    assert (posts(io)[0].tls_server_name, posts(io)[0].ca_pem) == (None, None)


def test_without_enable_azure_proxy_the_proxy_variables_are_ignored() -> None:
    env = {**PROXY_ENV, "AZURE_KUBERNETES_SNI_NAME": "bad name!", "AZURE_KUBERNETES_CA_DATA": "x"}
    _, io = fetch(workload(env=env), content(FED_1.encode(), 11), TOKEN_REPLY)
    assert posts(io)[0].url.startswith("https://login.microsoftonline.com/")
    assert posts(io)[0].tls_server_name is None


def test_enabled_without_any_proxy_variable_goes_to_entra() -> None:
    _, io = fetch(workload(enable_azure_proxy=True), content(FED_1.encode(), 11), TOKEN_REPLY)
    assert posts(io)[0].url.startswith("https://login.microsoftonline.com/")


def test_the_ca_file_is_reread_on_mtime_change_and_an_empty_one_keeps_the_old_ca() -> None:
    env = {**PROXY_ENV, "AZURE_KUBERNETES_CA_FILE": "/etc/aks/ca.crt"}
    cred = workload(enable_azure_proxy=True, env=env)
    _, io = fetch(cred, content(CA_PEM, 5), content(FED_1.encode(), 11), TOKEN_REPLY)
    assert reads(io)[0] == ReadFile("/etc/aks/ca.crt", max_bytes=1 << 20, unless_mtime_ns=None)
    assert posts(io)[0].ca_pem == CA_PEM
    # Unchanged: not read again.
    _, io = fetch(cred, content(None, 5), content(None, 11), TOKEN_REPLY)
    assert reads(io)[0].unless_mtime_ns == 5
    assert posts(io)[0].ca_pem == CA_PEM
    # Being rewritten (empty): the old CA stays.
    _, io = fetch(cred, content(b"\n", 6), content(None, 11), TOKEN_REPLY)
    assert posts(io)[0].ca_pem == CA_PEM
    # Rotated: the new CA is used.
    rotated = CA_PEM.replace(b"MIIB", b"MIIC")
    _, io = fetch(cred, content(rotated, 7), content(None, 11), TOKEN_REPLY)
    # The empty state was not remembered: on a coarse-mtime file system the rewrite may keep its mtime.
    assert reads(io)[0].unless_mtime_ns == 5
    assert posts(io)[0].ca_pem == rotated
    assert "_ca_copy" not in cred.__getstate__()


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (content(b"", 5), "AZURE_KUBERNETES_CA_FILE /etc/aks/ca.crt is empty"),
        (
            TransportError("file_not_found", "/etc/aks/ca.crt does not exist"),
            "cannot be read (file_not_found)",
        ),
        (content(b"x" * ((1 << 20) + 1), 5), "holds more than 1048576 bytes"),
    ],
)
def test_a_missing_or_empty_first_ca_file_is_not_configured(
    reply: Reply | BaseException, problem: str
) -> None:
    env = {**PROXY_ENV, "AZURE_KUBERNETES_CA_FILE": "/etc/aks/ca.crt"}
    error, io = fails(workload(enable_azure_proxy=True, env=env), reply)
    assert type(error) is NotConfiguredError
    assert problem in str(error)
    assert len(io.seen) == 1


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({**PROXY_ENV, "AZURE_KUBERNETES_CA_DATA": "pem", "AZURE_KUBERNETES_CA_FILE": "/ca"}, "CA_DATA"),
        ({"AZURE_KUBERNETES_SNI_NAME": "sni.example"}, "TOKEN_PROXY"),
        ({"AZURE_KUBERNETES_CA_DATA": "pem"}, "TOKEN_PROXY"),
        ({"AZURE_KUBERNETES_CA_FILE": "/ca"}, "TOKEN_PROXY"),
        ({"AZURE_KUBERNETES_TOKEN_PROXY": "http://proxy.local"}, "TOKEN_PROXY"),
        ({"AZURE_KUBERNETES_TOKEN_PROXY": "proxy.local"}, "TOKEN_PROXY"),
        ({"AZURE_KUBERNETES_TOKEN_PROXY": "https://"}, "TOKEN_PROXY"),
        ({"AZURE_KUBERNETES_TOKEN_PROXY": "https://user:pa55@proxy.local"}, "TOKEN_PROXY"),
        ({"AZURE_KUBERNETES_TOKEN_PROXY": "https://proxy.local/?a=1"}, "TOKEN_PROXY"),
        ({"AZURE_KUBERNETES_TOKEN_PROXY": "https://proxy.local/?"}, "TOKEN_PROXY"),
        ({"AZURE_KUBERNETES_TOKEN_PROXY": "https://proxy.local/#frag"}, "TOKEN_PROXY"),
        ({"AZURE_KUBERNETES_TOKEN_PROXY": "https://proxy.local:99999"}, "TOKEN_PROXY"),
        ({"AZURE_KUBERNETES_TOKEN_PROXY": "https://proxy.local:0"}, "TOKEN_PROXY"),
        ({**PROXY_ENV, "AZURE_KUBERNETES_SNI_NAME": "bad name"}, "SNI_NAME"),
        ({**PROXY_ENV, "AZURE_KUBERNETES_SNI_NAME": "-lead.example"}, "SNI_NAME"),
    ],
)
def test_bad_proxy_settings_are_config_errors(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        workload(enable_azure_proxy=True, env=env)
    message = str(caught.value)
    assert message.startswith(f"WorkloadIdentityCredential: AZURE_KUBERNETES_{variable} is invalid: ")
    assert "pa55" not in message


# -- AzurePipelinesCredential (§2.4) --


def oidc_reply(
    status: int = 200, body: Any = None, headers: tuple[tuple[str, str], ...] = ()
) -> HttpResponse:
    payload = json.dumps({"oidcToken": OIDC_TOKEN} if body is None else body).encode()
    return HttpResponse(status, headers, payload)


@pytest.mark.parametrize(
    ("uri", "url"),
    [
        (OIDC_URI, f"{OIDC_URI}?api-version=7.1&serviceConnectionId={CONNECTION}"),
        (OIDC_URI + "/", f"{OIDC_URI}?api-version=7.1&serviceConnectionId={CONNECTION}"),
        (OIDC_URI + "?x=1", f"{OIDC_URI}?x=1&api-version=7.1&serviceConnectionId={CONNECTION}"),
    ],
)
def test_pipelines_posts_to_the_oidc_endpoint_then_exchanges_the_token(uri: str, url: str) -> None:
    cred = pipelines(env={"SYSTEM_OIDCREQUESTURI": uri, "AZURE_HTTP_USER_AGENT": "app/1"})
    info, io = fetch(cred, oidc_reply(), TOKEN_REPLY)
    oidc, token = io.seen
    assert isinstance(oidc, HttpRequest)
    assert (oidc.method, oidc.url, oidc.body) == ("POST", url, b"")
    assert oidc.headers == (
        ("User-Agent", f"azid/0.1.0 Python/{PYTHON} ({sys.platform}) app/1"),
        ("x-ms-client-request-id", REQUEST_ID),
        ("Accept", "application/json"),
        ("Content-Type", "application/json"),
        ("Authorization", f"Bearer {SYSTEM_TOKEN}"),
        ("X-TFS-FedAuthRedirect", "Suppress"),
    )
    assert (oidc.timeout, oidc.connect_timeout) == (30.0, 10.0)
    assert SYSTEM_TOKEN not in repr(oidc)
    assert isinstance(token, HttpRequest)
    assert token.url == f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
    assert parse_qsl(token.body.decode()) == [
        ("client_assertion", OIDC_TOKEN),
        ("client_assertion_type", JWT_BEARER),
        ("client_id", CLIENT),
        ("grant_type", "client_credentials"),
        ("scope", SCOPE),
    ]
    assert info.token == "at-1"


def test_the_connection_id_is_percent_encoded_and_timeouts_follow_the_option() -> None:
    cred = pipelines(service_connection_id="a/b c:d", request_timeout=5)
    _, io = fetch(cred, oidc_reply(), TOKEN_REPLY)
    oidc = posts(io)[0]
    assert oidc.url.endswith("?api-version=7.1&serviceConnectionId=a%2Fb+c%3Ad")
    assert (oidc.timeout, oidc.connect_timeout) == (5.0, 5.0)


def test_each_miss_asks_for_a_new_oidc_token() -> None:
    cred = pipelines()
    fetch(cred, oidc_reply(), TOKEN_REPLY)
    _, io = fetch(cred, oidc_reply(), TOKEN_REPLY, scope="https://storage.azure.com/.default")
    assert len(posts(io)) == 2
    assert cred.cache_key(TokenCall((SCOPE,), None, None, False))[3] == (
        f"pipelines:https://login.microsoftonline.com:{CLIENT}"
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("service_connection_id", ""),
        ("service_connection_id", None),
        ("system_access_token", ""),
        ("system_access_token", "   "),
        ("tenant_id", ""),
        ("client_id", ""),
    ],
)
def test_all_four_values_are_required(option: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"^AzurePipelinesCredential: {option} is invalid"):
        pipelines(**{option: value})


def test_a_system_token_that_cannot_be_a_header_value_is_not_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        pipelines(system_access_token="abc\r\ndef")
    assert str(caught.value) == (
        "AzurePipelinesCredential: system_access_token is invalid: only printable ASCII is allowed"
    )


def test_without_system_oidcrequesturi_it_is_unavailable_at_get_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SYSTEM_OIDCREQUESTURI", raising=False)
    for cred in (pipelines(env={}), pipelines(env={"SYSTEM_OIDCREQUESTURI": " "}), pipelines(env=None)):
        error, io = fails(cred)
        assert type(error) is CredentialUnavailableError
        assert str(error) == (
            "AzurePipelinesCredential: SYSTEM_OIDCREQUESTURI is not set; this is not an Azure Pipelines job"
        )
        assert io.seen == []


def test_the_uri_is_read_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", OIDC_URI)
    cred = pipelines(env=None)
    monkeypatch.delenv("SYSTEM_OIDCREQUESTURI")
    _, io = fetch(cred, oidc_reply(), TOKEN_REPLY)
    assert posts(io)[0].url.startswith(OIDC_URI + "?")


def test_policy_s() -> None:
    assert {408, 429, 500, 502, 503, 504, 506, 550, 599} <= SERVICE_POLICY.statuses
    assert not {400, 401, 403, 404, 501, 505, 600} & SERVICE_POLICY.statuses
    assert SERVICE_POLICY.transport_kinds == {"connect", "timeout", "closed"}
    assert (SERVICE_POLICY.delays, SERVICE_POLICY.budget) == ((0.0, 1.6, 3.2), 60.0)


def test_the_oidc_request_is_retried_under_policy_s() -> None:
    _, io = fetch(
        pipelines(),
        oidc_reply(503, {}),
        None,
        TransportError("timeout", "slow"),
        None,
        oidc_reply(429, {}, (("Retry-After", "7"),)),
        NOW + 10,
        oidc_reply(),
        TOKEN_REPLY,
    )
    assert [e.seconds for e in io.seen if isinstance(e, Sleep)] == [0.0, 1.6, 7.0]
    oidc = posts(io)[:4]
    assert len({r.headers[1] for r in oidc}) == 1  # one request id across the retries


def test_an_unreachable_oidc_endpoint_is_unavailable() -> None:
    refused = TransportError("connect", f"refused; token {SYSTEM_TOKEN}")
    error, io = fails(pipelines(), refused, None, refused, None, refused, None, refused)
    assert type(error) is CredentialUnavailableError
    assert str(error).startswith(
        f"AzurePipelinesCredential: the Azure Pipelines OIDC endpoint at {OIDC_URI} could not be "
        "reached (connect)"
    )
    assert SYSTEM_TOKEN not in str(error)
    assert isinstance(error.__cause__, TransportError)
    assert len(posts(io)) == 4


def test_an_oversized_oidc_reply_is_a_protocol_error() -> None:
    error, _ = fails(pipelines(), TransportError("too_large", "more than 1048576 bytes"))
    assert type(error) is ProtocolError
    assert (error.source, error.field) == ("Azure Pipelines OIDC endpoint", "body")


def test_a_refusal_names_the_tracing_headers_and_masks_the_excerpt() -> None:
    body = {"message": f"denied for {SYSTEM_TOKEN}", "oidcToken": OIDC_TOKEN}
    headers = (("X-VSS-E2EID", "e2e-42"), ("x-msedge-ref", "Ref A: 1"))
    error, io = fails(pipelines(), oidc_reply(403, body, headers))
    assert type(error) is AuthError
    assert error.status == 403
    assert error.request_id == REQUEST_ID
    assert str(error) == (
        "AzurePipelinesCredential: the Azure Pipelines OIDC endpoint returned HTTP 403 (Forbidden); check "
        "the service connection ID and the pipeline's access to it. x-vss-e2eid: e2e-42; x-msedge-ref: "
        'Ref A: 1. Reply: {"message": "denied for ****", "oidcToken": "****"}'
    )
    assert error.body_excerpt == '{"message": "denied for ****", "oidcToken": "****"}'
    assert len(io.seen) == 1  # 403 is not retried


@pytest.mark.parametrize(
    ("status", "phrase"), [(302, "Found"), (401, "Unauthorized"), (299, "unknown status")]
)
def test_any_other_status_is_an_auth_error(status: int, phrase: str) -> None:
    error, _ = fails(pipelines(), HttpResponse(status, (), b""))
    assert type(error) is AuthError
    assert str(error).endswith(
        f"returned HTTP {status} ({phrase}); check the service connection ID and the pipeline's access to "
        "it. x-vss-e2eid: -; x-msedge-ref: -."
    )
    assert error.body_excerpt is None


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        (b"<html>sign in</html>", "body", "not a JSON object: <html>sign in</html>"),
        (b"", "body", "not a JSON object: empty"),
        (b"{}", "oidcToken", "missing"),
        (b'{"oidcToken": ""}', "oidcToken", "not a non-empty string"),
        (b'{"oidcToken": 5}', "oidcToken", "not a non-empty string"),
    ],
)
def test_a_200_without_an_oidc_token_is_a_protocol_error(body: bytes, field: str, problem: str) -> None:
    error, _ = fails(pipelines(), HttpResponse(200, (), body))
    assert type(error) is ProtocolError
    prefix = "AzurePipelinesCredential: cannot read the Azure Pipelines OIDC endpoint reply"
    assert str(error) == f"{prefix}: {field}: {problem}"


def test_no_system_or_oidc_token_in_repr_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    cred = pipelines()
    echo = {"error": "invalid_client", "error_description": f"AADSTS70021: {OIDC_TOKEN} / {SYSTEM_TOKEN}"}
    with caplog.at_level(logging.DEBUG, logger="azid"):
        error, _ = fails(cred, oidc_reply(), HttpResponse(400, (), json.dumps(echo).encode()))
    assert isinstance(error, AuthError)
    assert caplog.records
    assert repr(cred) == (
        f"AzurePipelinesCredential(tenant_id='{TENANT}', client_id='{CLIENT}', "
        f"authority='https://login.microsoftonline.com', service_connection_id='{CONNECTION}')"
    )
    for text in (str(error), repr(error.__dict__), repr(cred), caplog.text):
        assert OIDC_TOKEN not in text
        assert SYSTEM_TOKEN not in text


# -- the emulator's federated side --

ISSUER, SUBJECT = "https://oidc.aks.example/issuer", "system:serviceaccount:default:workload"


@pytest.fixture
def emulator(signing_key: RSAPrivateKey) -> EntraEmulator:
    emulator = EntraEmulator(clock=lambda: NOW, signing_key=signing_key)
    emulator.add_app(TENANT, CLIENT).add_federated(ISSUER, SUBJECT)
    return emulator


def exchange(emulator: EntraEmulator, assertion: str) -> HttpResponse:
    form = [
        ("client_assertion", assertion),
        ("client_assertion_type", JWT_BEARER),
        ("client_id", CLIENT),
        ("grant_type", "client_credentials"),
        ("scope", SCOPE),
    ]
    body = "&".join(f"{k}={v}" for k, v in form).encode()
    return emulator(HttpRequest("POST", f"https://login.example/{TENANT}/oauth2/v2.0/token", body=body))


def aadsts(response: HttpResponse) -> int:
    codes: list[int] = json.loads(response.body)["error_codes"]
    return codes[0]


def test_emulator_accepts_a_registered_federated_identity(emulator: EntraEmulator) -> None:
    response = exchange(emulator, emulator.federated_token(ISSUER, SUBJECT))
    assert response.status == 200
    claims = emulator.decode(json.loads(response.body)["access_token"])
    assert (claims["appid"], claims["aud"]) == (CLIENT, "https://vault.azure.net")


def test_emulator_refuses_bad_federated_assertions(emulator: EntraEmulator) -> None:
    import jwt

    claims = {"iss": ISSUER, "sub": SUBJECT, "aud": "api://AzureADTokenExchange", "exp": 2 * 10**9}
    other_key = EntraEmulator(clock=lambda: NOW).sign(claims)
    assert aadsts(exchange(emulator, other_key)) == 700027
    assert aadsts(exchange(emulator, jwt.encode(claims, "k" * 32))) == 50027  # HS256: not Entra's
    not_json = jwt.api_jws.encode(b"not json", emulator.key.private_key, algorithm="RS256")
    assert aadsts(exchange(emulator, not_json)) == 50027
    no_sub = emulator.sign({"iss": ISSUER, "aud": "x", "exp": 2 * 10**9})
    assert aadsts(exchange(emulator, no_sub)) == 50027
    text_exp = emulator.sign({"iss": ISSUER, "sub": SUBJECT, "aud": "x", "exp": "soon"})
    assert aadsts(exchange(emulator, text_exp)) == 50027
    expired = emulator.federated_token(ISSUER, SUBJECT, lifetime=0)
    response = exchange(emulator, expired)
    assert (response.status, aadsts(response)) == (400, 700024)
    assert "not within its valid time range" in json.loads(response.body)["error_description"]
    future = emulator.sign(
        {
            "iss": ISSUER,
            "sub": SUBJECT,
            "aud": "api://AzureADTokenExchange",
            "nbf": NOW + 60,
            "exp": NOW + 600,
        }
    )
    assert aadsts(exchange(emulator, future)) == 700024
    assert (
        aadsts(exchange(emulator, emulator.federated_token(ISSUER, SUBJECT, audience="api://other")))
        == 700212
    )
    assert aadsts(exchange(emulator, emulator.federated_token("https://evil.example", SUBJECT))) == 700211
    assert aadsts(exchange(emulator, emulator.federated_token(ISSUER, "system:serviceaccount:x:y"))) == 70021


def oidc(emulator: EntraEmulator, query: str, token: str) -> HttpResponse:
    url = f"https://dev.azure.com/org/_apis/distributedtask/hubs/build/plans/p/jobs/j/oidctoken?{query}"
    return emulator(HttpRequest("POST", url, headers=(("Authorization", f"Bearer {token}"),)))


def test_emulator_serves_the_pipelines_oidc_endpoint(emulator: EntraEmulator) -> None:
    app = emulator.apps[(TENANT, CLIENT)]
    identity = emulator.add_service_connection(app, CONNECTION)
    assert identity == (PIPELINES_ISSUER, f"sc://azid-org/azid-project/{CONNECTION}")
    assert identity in app.federated
    token = emulator.system_access_token
    response = oidc(emulator, f"api-version=7.1&serviceConnectionId={CONNECTION}", token)
    assert response.status == 200
    assert response.header("x-vss-e2eid")
    assert response.header("x-msedge-ref")
    federated = json.loads(response.body)["oidcToken"]
    claims = emulator.decode(federated)
    assert (claims["iss"], claims["sub"], claims["aud"]) == (*identity, "api://AzureADTokenExchange")
    assert exchange(emulator, federated).status == 200
    assert oidc(emulator, f"api-version=7.1&serviceConnectionId={CONNECTION}", "wrong").status == 401
    assert oidc(emulator, "api-version=7.1&serviceConnectionId=unknown", token).status == 404
    assert oidc(emulator, f"api-version=7.0&serviceConnectionId={CONNECTION}", token).status == 400
    # Faults queued for the token endpoint are not spent on the OIDC endpoint.
    emulator.fail_next(503, {"error": "temporarily_unavailable"})
    assert oidc(emulator, f"api-version=7.1&serviceConnectionId={CONNECTION}", token).status == 200
    assert exchange(emulator, federated).status == 503


def test_pipelines_and_workload_against_the_emulator_in_process(
    emulator: EntraEmulator, tmp_path: Path
) -> None:
    def send(effect: Effect) -> Reply:
        if isinstance(effect, HttpRequest):
            return emulator(effect)
        assert isinstance(effect, ReadFile)
        return blocking.read_file(effect)

    emulator.add_service_connection(emulator.apps[(TENANT, CLIENT)], CONNECTION)
    cred = pipelines(system_access_token=emulator.system_access_token, authority="https://login.example")
    call = TokenCall((SCOPE,), None, None, False)
    info = run(cred.fetch_flow(call, cred.cache_key(call), NOW), send)
    assert emulator.decode(info.token)["appid"] == CLIENT
    token_file = tmp_path / "token"
    token_file.write_text(emulator.federated_token(ISSUER, SUBJECT) + "\n")
    wl = workload(token_file_path=str(token_file), authority="https://login.example")
    info = run(wl.fetch_flow(call, wl.cache_key(call), NOW), send)
    assert emulator.decode(info.token)["appid"] == CLIENT
