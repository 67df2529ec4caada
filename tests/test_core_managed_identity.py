"""ManagedIdentityCredential as a core object (PROTOCOL.md §4, §7.1, §7.4): detection row by row,
selectors, the App Service, Azure ML and Cloud Shell requests exactly, Arc and Service Fabric wired
in, the Arc agent check, §4.3's outcomes, expiry forms, the in-chain rule, the workload branch, the
federated assertion, secrets and pickling."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import pickle
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azid_core.acquire import TokenCall
from azid_core.drive import run
from azid_core.effects import FileContent, FunctionCall, HttpRequest, HttpResponse, ReadFile
from azid_core.entra.assertion import ClientAssertionCredential, assertion_from
from azid_core.errors import (
    AuthError,
    AzidError,
    ConfigError,
    CredentialUnavailableError,
    NotConfiguredError,
    ProtocolError,
    TransportError,
)
from azid_core.managed_identity.app_service import AppServiceSource
from azid_core.managed_identity.azure_ml import AzureMLSource
from azid_core.managed_identity.common import bypasses_proxy, host_bypasses_proxy
from azid_core.managed_identity.credential import ManagedIdentityAssertion, ManagedIdentityCredential
from azid_core.testing import ScriptedIO

from .mi_core import (
    NOW,
    RES_ID,
    RES_ID_Q,
    RESOURCE_Q,
    SCOPE,
    TOKEN,
    base_headers,
    call,
    entropy,
    fail,
    get,
    json_reply,
    make,
    requests,
    sleeps,
    token_reply,
)

APP_ENDPOINT = "http://127.0.0.1:41741/msi/token"
IDENTITY_HEADER = "Id3ntity-Header-Secret-0001"
MSI_SECRET = "Msi-Secret-Value-0002"
ML_ENDPOINT = "http://127.0.0.1:46808/MSI/auth"
SHELL_ENDPOINT = "http://localhost:50342/oauth2/token"
ARC_ENDPOINT = "http://localhost:40342/metadata/identity/oauth2/token"
SF_ENDPOINT = "https://10.0.0.4:2377/metadata/identity/oauth2/token"
THUMBPRINT = "AB:CD" + "ef" * 18
APP = {"IDENTITY_ENDPOINT": APP_ENDPOINT, "IDENTITY_HEADER": IDENTITY_HEADER}
SF = {**APP, "IDENTITY_ENDPOINT": SF_ENDPOINT, "IDENTITY_SERVER_THUMBPRINT": THUMBPRINT}
ARC = {"IDENTITY_ENDPOINT": ARC_ENDPOINT, "IMDS_ENDPOINT": "http://localhost:40342"}
ML = {"MSI_ENDPOINT": ML_ENDPOINT, "MSI_SECRET": MSI_SECRET}
SHELL = {"MSI_ENDPOINT": SHELL_ENDPOINT}
WORKLOAD = {
    "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com/",
    "AZURE_TENANT_ID": "tenant-w",
    "AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token",
    "AZURE_CLIENT_ID": "client-w",
}
EPOCH_REPLY = token_reply(expires_on=str(int(NOW) + 3600), expires_in="1")


# -- detection (§4.1), row by row, first match --


@pytest.mark.parametrize(
    ("env", "source"),
    [
        ({**SF, **ARC, **ML, **WORKLOAD, "IDENTITY_ENDPOINT": SF_ENDPOINT}, "service_fabric"),  # row 1
        ({**APP, **ARC, **ML, **WORKLOAD, "IDENTITY_ENDPOINT": APP_ENDPOINT}, "app_service"),  # row 2
        ({**ARC, **ML, **WORKLOAD}, "arc"),  # row 3
        ({**ML, **WORKLOAD}, "azure_ml"),  # row 4
        ({**SHELL, **WORKLOAD}, "cloud_shell"),  # row 5
        ({**WORKLOAD, "IDENTITY_ENDPOINT": APP_ENDPOINT}, "workload_identity"),  # row 6
        ({"IDENTITY_ENDPOINT": APP_ENDPOINT}, None),  # row 7
        ({}, "imds"),  # row 8
        ({**APP, "IDENTITY_SERVER_THUMBPRINT": ""}, "app_service"),  # empty is unset
        ({**APP, "IDENTITY_HEADER": "  "}, None),
        ({**ML, "MSI_SECRET": ""}, "cloud_shell"),
        ({**WORKLOAD, "AZURE_AUTHORITY_HOST": ""}, "imds"),  # row 6 needs all three
        ({"IMDS_ENDPOINT": "http://localhost:40342"}, "imds"),  # Arc needs both
    ],
)
def test_detection_table(env: dict[str, str], source: str | None) -> None:
    cred = make(env)
    assert cred.source == source
    assert repr(cred).startswith(f"ManagedIdentityCredential(source={source!r}")


def test_the_workload_branch_can_be_switched_off() -> None:
    assert make(WORKLOAD, _workload_identity=False).source == "imds"
    assert make({**WORKLOAD, **SHELL}, _workload_identity=False).source == "cloud_shell"


def test_source_is_read_only() -> None:
    cred = make()
    with pytest.raises(AttributeError):
        cred.source = "arc"  # type: ignore[misc]


def test_row_7_names_the_missing_partner_at_every_get_token() -> None:
    cred = make({"IDENTITY_ENDPOINT": APP_ENDPOINT})
    for _ in range(2):
        error, io = fail(cred)
        assert io.seen == []
        assert type(error) is CredentialUnavailableError
        assert str(error) == (
            "ManagedIdentityCredential: IDENTITY_ENDPOINT is set but neither IDENTITY_HEADER "
            "(App Service, Service Fabric) nor IMDS_ENDPOINT (Azure Arc) is"
        )


def test_env_none_reads_the_process_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MSI_ENDPOINT", SHELL_ENDPOINT)
    monkeypatch.delenv("MSI_SECRET", raising=False)
    cred = ManagedIdentityCredential()
    monkeypatch.setenv("MSI_SECRET", MSI_SECRET)
    assert cred.source == "cloud_shell"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({**APP, "IDENTITY_ENDPOINT": "127.0.0.1:41741/msi/token"}, "IDENTITY_ENDPOINT"),
        ({**ARC, "IDENTITY_ENDPOINT": "file:///etc/passwd"}, "IDENTITY_ENDPOINT"),
        ({**SF, "IDENTITY_ENDPOINT": "http://10.0.0.4:2377/token"}, "IDENTITY_ENDPOINT"),  # https only
        ({**ML, "MSI_ENDPOINT": "ftp://x"}, "MSI_ENDPOINT"),
        ({"MSI_ENDPOINT": "relative/path"}, "MSI_ENDPOINT"),
    ],
)
def test_endpoints_must_be_absolute_http_urls(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=rf"^ManagedIdentityCredential: {name} is invalid: an absolute"):
        make(env)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({**APP, "IDENTITY_HEADER": "bad\x7fheader"}, "IDENTITY_HEADER"),
        ({**SF, "IDENTITY_HEADER": "caf\u00e9-secret"}, "IDENTITY_HEADER"),
        ({**ML, "MSI_SECRET": "line\x01secret"}, "MSI_SECRET"),
    ],
)
def test_header_values_from_the_env_are_printable_ascii(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make(env)
    assert (
        str(caught.value) == f"ManagedIdentityCredential: {name} is invalid: only printable ASCII is allowed"
    )


def test_a_bad_thumbprint_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="IDENTITY_SERVER_THUMBPRINT is invalid"):
        make({**SF, "IDENTITY_SERVER_THUMBPRINT": "abc"})


def test_a_bad_arc_key_directory_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="arc_key_directory is invalid"):
        make(ARC, arc_key_directory="relative")
    with pytest.raises(ConfigError, match="arc_key_directory is invalid"):
        make({}, arc_key_directory="relative")  # row 8 may become Arc


# -- selectors (§4) --


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"client_id": "a", "object_id": "b"}, "object_id is invalid: give at most one"),
        (
            {"client_id": "a", "identity_config": {"mi_res_id": "r"}},
            "identity_config['mi_res_id'] is invalid",
        ),
        (
            {"identity_config": {"client_id": "a", "object_id": "b"}},
            "identity_config['object_id'] is invalid",
        ),
        (
            {"identity_config": {"principal_id": "a"}},
            "identity_config is invalid: 'principal_id' is not one of",
        ),
        ({"identity_config": ["client_id"]}, "identity_config is invalid: a mapping is required"),
        ({"client_id": ""}, "client_id is invalid: a non-empty string is required"),
        ({"object_id": "  "}, "object_id is invalid"),
        ({"resource_id": 42}, "resource_id is invalid"),
        ({"client_id": "a\nb"}, "client_id is invalid"),
        ({"identity_config": {"msi_res_id": ""}}, "identity_config['msi_res_id'] is invalid"),
        ({"request_timeout": 0}, "request_timeout is invalid"),
        ({"request_timeout": True}, "request_timeout is invalid"),
        ({"request_timeout": "30"}, "request_timeout is invalid"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make(**options)
    assert str(caught.value).startswith(f"ManagedIdentityCredential: {message}")


def test_an_empty_identity_config_is_system_assigned() -> None:
    assert make(identity_config={})._identity == "mi:imds:system"


@pytest.mark.parametrize("env", [SF, SHELL])
@pytest.mark.parametrize(
    "options", [{"client_id": "c"}, {"object_id": "o"}, {"identity_config": {"msi_res_id": "r"}}]
)
def test_an_explicit_selector_where_there_are_none_is_a_config_error(
    env: dict[str, str], options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError, match="has no user-assigned identities"):
        make(env, **options)


@pytest.mark.parametrize(("env", "label"), [(SF, "Service Fabric"), (SHELL, "Cloud Shell")])
def test_dacs_azure_client_id_is_dropped_there_with_a_debug_record(
    env: dict[str, str], label: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="azid"):
        cred = make(env, _inherited_client_id="client-from-env")
    assert cred._identity.endswith(":system")
    assert f"AZURE_CLIENT_ID is ignored: {label} has no user-assigned identities" in caplog.text


def test_dacs_azure_client_id_is_a_default_selector_elsewhere() -> None:
    assert make(_inherited_client_id="c-env")._identity == "mi:imds:client_id=c-env"
    assert make(_inherited_client_id="c-env", object_id="o-1")._identity == "mi:imds:object_id=o-1"


@pytest.mark.parametrize(
    ("env", "options", "identity"),
    [
        ({}, {}, "mi:imds:system"),
        ({}, {"client_id": "c-1"}, "mi:imds:client_id=c-1"),
        (APP, {"object_id": "o-1"}, "mi:app_service:object_id=o-1"),
        (ARC, {"identity_config": {"mi_res_id": RES_ID}}, f"mi:arc:resource_id={RES_ID}"),
        (ML, {"resource_id": RES_ID}, f"mi:azure_ml:resource_id={RES_ID}"),
        (SHELL, {}, "mi:cloud_shell:system"),
        (SF, {}, "mi:service_fabric:system"),
        (WORKLOAD, {}, "mi:workload_identity:client_id=client-w"),
        ({"IDENTITY_ENDPOINT": APP_ENDPOINT}, {}, "mi:unavailable:system"),
    ],
)
def test_cache_key(env: dict[str, str], options: dict[str, Any], identity: str) -> None:
    cred = make(env, **options)
    # tenant_id and enable_cae do not apply to managed identities (§4, §7.1).
    key = cred.cache_key(TokenCall((SCOPE,), None, "other-tenant", True))
    assert key == ((SCOPE,), "", False, identity)


@pytest.mark.parametrize(
    ("scopes", "claims", "message"),
    [
        ((), None, "scopes is invalid: at least one"),
        ((SCOPE, "https://storage.azure.com/.default"), None, "scopes is invalid: exactly one scope"),
        (("has space",), None, "scopes is invalid"),
        ((SCOPE,), 42, "claims is invalid"),
    ],
)
def test_call_checks(scopes: tuple[str, ...], claims: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^ManagedIdentityCredential: {message}"):
        make().cache_key(TokenCall(scopes, claims, None, False))


# -- the requests (§4.2) --


@pytest.mark.parametrize(
    ("options", "query"),
    [
        ({}, ""),
        ({"client_id": "c-1"}, "&client_id=c-1"),
        ({"object_id": "o-1"}, "&object_id=o-1"),
        ({"resource_id": RES_ID}, f"&mi_res_id={RES_ID_Q}"),  # §10 item 2
        ({"identity_config": {"msi_res_id": RES_ID}}, f"&mi_res_id={RES_ID_Q}"),
    ],
)
def test_app_service_request(options: dict[str, Any], query: str) -> None:
    info, io = get(make(APP, **options), EPOCH_REPLY)
    assert io.seen == [
        HttpRequest(
            "GET",
            f"{APP_ENDPOINT}?api-version=2019-08-01&resource={RESOURCE_Q}{query}",
            headers=(*base_headers(), ("X-IDENTITY-HEADER", IDENTITY_HEADER), ("Metadata", "true")),
            timeout=30.0,
            connect_timeout=5.0,
            bypass_proxy=True,
        )
    ]
    assert info.expires_on == int(NOW) + 3600  # expires_on before expires_in
    assert info.source == "ManagedIdentityCredential:app_service"


@pytest.mark.parametrize(
    ("options", "query"),
    [
        ({}, ""),
        ({"client_id": "c-1"}, "&clientid=c-1"),
        ({"object_id": "o-1"}, "&object_id=o-1"),
        ({"resource_id": RES_ID}, f"&msi_res_id={RES_ID_Q}"),
    ],
)
def test_azure_ml_request(options: dict[str, Any], query: str) -> None:
    info, io = get(make(ML, **options), EPOCH_REPLY)
    assert io.seen == [
        HttpRequest(
            "GET",
            f"{ML_ENDPOINT}?api-version=2017-09-01&resource={RESOURCE_Q}{query}",
            headers=(*base_headers(), ("secret", MSI_SECRET)),
            timeout=30.0,
            connect_timeout=5.0,
            bypass_proxy=True,
        )
    ]
    assert info.source == "ManagedIdentityCredential:azure_ml"


def test_cloud_shell_request() -> None:
    info, io = get(make(SHELL, request_timeout=3), EPOCH_REPLY)
    assert io.seen == [
        HttpRequest(
            "POST",
            SHELL_ENDPOINT,
            headers=(
                *base_headers(),
                ("Metadata", "true"),
                ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
            ),
            body=b"resource=https%3A%2F%2Fvault.azure.net",
            timeout=3.0,
            connect_timeout=3.0,
            bypass_proxy=True,
        )
    ]
    assert info.source == "ManagedIdentityCredential:cloud_shell"


def test_the_resource_is_the_scope_without_default() -> None:
    _, io = get(make(SHELL), EPOCH_REPLY, scope="api://AzureADTokenExchange")
    assert requests(io)[0].body == b"resource=api%3A%2F%2FAzureADTokenExchange"
    _, io = get(make(SHELL), EPOCH_REPLY, scope="https://x.example/.default/.default")
    assert requests(io)[0].body == b"resource=https%3A%2F%2Fx.example%2F.default"


@pytest.mark.parametrize(
    ("options", "query", "echo"),
    [
        ({}, "", {}),
        ({"client_id": "c-1"}, "&client_id=c-1", {"client_id": "c-1"}),
        ({"object_id": "o-1"}, "&object_id=o-1", {"object_id": "o-1"}),
        ({"resource_id": RES_ID}, f"&msi_res_id={RES_ID_Q}", {"msi_res_id": RES_ID}),
    ],
)
def test_arc_is_wired_in(options: dict[str, Any], query: str, echo: dict[str, str]) -> None:
    info, io = get(make(ARC, platform="linux", **options), token_reply(expires_in="3600", **echo))
    (request,) = io.seen
    assert isinstance(request, HttpRequest)
    assert request.url == f"{ARC_ENDPOINT}?api-version=2020-06-01&resource={RESOURCE_Q}{query}"
    assert request.headers[-1] == ("Metadata", "true")
    assert info.source == "ManagedIdentityCredential:arc"


def test_service_fabric_is_wired_in_and_pinned() -> None:
    cred = make(SF)
    _, io = get(cred, EPOCH_REPLY)
    (request,) = io.seen
    assert isinstance(request, HttpRequest)
    assert request.url == f"{SF_ENDPOINT}?api-version=2019-07-01-preview&resource={RESOURCE_Q}"
    assert request.headers[-1] == ("Secret", IDENTITY_HEADER)
    assert request.pin_sha1 == bytes.fromhex("abcd" + "ef" * 18)
    # Claims skip the cache read, and Service Fabric is told which token the caller holds (§4.2).
    _, io = get(cred, EPOCH_REPLY, claims='{"access_token":{}}')
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    assert requests(io)[0].url.endswith(f"&token_sha256_to_refresh={digest}")


def test_claims_skip_the_cache_read_and_are_not_sent() -> None:
    cred = make(APP)
    get(cred, EPOCH_REPLY)
    _, io = get(cred)  # served from the cache
    assert io.seen == []
    _, io = get(cred, EPOCH_REPLY, claims='{"access_token":{"nbf":{"essential":true}}}')
    assert len(io.seen) == 1
    assert "claims" not in requests(io)[0].url


# -- expiry forms (§0.6) each source may send --


@pytest.mark.parametrize(
    ("env", "fields", "now", "expires_on"),
    [
        (APP, {"expires_on": "1621707273"}, 1621700000.0, 1621707273),
        (APP, {"expires_on": "05/22/2021 17:14:33 +00:00", "expires_in": "1"}, 1621700000.0, 1621703673),
        (APP, {"expires_in": "600"}, NOW, NOW + 600),
        (ML, {"expires_on": 1621707273}, 1621700000.0, 1621707273),
        (ML, {"expires_on": "1621707273"}, 1621700000.0, 1621707273),
        (ML, {"expires_on": "6/20/2019 2:57:58 AM +00:00"}, 1560990000.0, 1560999478),
        (SHELL, {"expires_on": "1621707273", "expires_in": "3599"}, 1621700000.0, 1621707273),
        (SF, {"expires_on": 1621707273}, 1621700000.0, 1621707273),
        (ARC, {"expires_in": "3600", "expires_on": "1"}, NOW, NOW + 3600),
    ],
)
def test_expiry_forms(env: dict[str, str], fields: dict[str, Any], now: float, expires_on: float) -> None:
    info, _ = get(make(env, platform="linux"), token_reply(**fields), now=now)
    assert info.expires_on == expires_on


def test_half_life_for_long_tokens_everywhere() -> None:
    info, _ = get(make(APP), token_reply(expires_on=str(int(NOW) + 86400)))
    assert info.refresh_on == NOW + 43200


# -- outcomes (§4.3) --


@pytest.mark.parametrize("env", [APP, ML, SHELL])
def test_a_transport_failure_is_unavailable_after_policy_s(env: dict[str, str]) -> None:
    refused = TransportError("connect", "refused")
    error, io = fail(make(env), refused, None, refused, None, refused, None, refused)
    assert sleeps(io) == [0.0, 1.6, 3.2]
    assert type(error) is CredentialUnavailableError
    assert "is unreachable (connect)" in str(error)


@pytest.mark.parametrize("env", [APP, ML, SHELL])
def test_400_is_not_configured(env: dict[str, str]) -> None:
    error, io = fail(make(env), json_reply(400, {"error": "invalid_request", "error_description": "no such"}))
    assert len(io.seen) == 1
    assert type(error) is NotConfiguredError
    assert "identity is not available here (HTTP 400)" in str(error)


def test_app_service_error_code_is_status_code() -> None:
    body = {"statusCode": 401, "message": "Unauthorized request", "correlationId": "c-1"}
    error, _ = fail(make(APP), json_reply(401, body, (("x-ms-request-id", "svc-9"),)))
    assert isinstance(error, AuthError)
    assert (error.status, error.error) == (401, "401")
    assert str(error).startswith(
        "ManagedIdentityCredential (app_service): the managed identity endpoint refused the request "
        "(HTTP 401, 401)"
    )
    assert "x-ms-request-id: svc-9" in str(error)
    error, _ = fail(make(APP), json_reply(403, {"statusCode": True}))
    assert isinstance(error, AuthError)
    assert error.error is None
    error, _ = fail(make(APP), json_reply(403, {"statusCode": "Forbidden"}))
    assert isinstance(error, AuthError)
    assert error.error == "Forbidden"


@pytest.mark.parametrize("env", [APP, ML, SHELL])
def test_an_unreadable_2xx_is_a_protocol_error(env: dict[str, str]) -> None:
    error, _ = fail(make(env), HttpResponse(200, (), b"not json"))
    assert isinstance(error, ProtocolError)
    error, _ = fail(make(env), json_reply(200, {"access_token": TOKEN, "expires_on": "soon"}))
    assert isinstance(error, ProtocolError)
    assert error.field == "expires_on"


# -- the in-chain rule (§4.5, last paragraph) on every source --


@pytest.mark.parametrize("env", [APP, ML, SHELL, ARC, SF])
def test_in_a_chain_a_refused_first_request_is_unavailable_at_once_and_remembered(
    env: dict[str, str],
) -> None:
    cred = make(env, platform="linux", imds_probe_ttl=30)
    error, io = fail(cred, TransportError("connect", "refused"), in_chain=True)
    assert len(io.seen) == 1
    assert type(error) is CredentialUnavailableError
    assert "is unreachable (connect)" in str(error)
    assert isinstance(error.__cause__, TransportError)
    error, io = fail(cred, now=NOW + 10, in_chain=True)
    assert io.seen == []
    assert str(error) == (
        f"ManagedIdentityCredential ({cred.source}): the endpoint refused a connection 10 s ago (connect); "
        "next try in 20 s"
    )
    _, io = get(cred, EPOCH_REPLY, now=NOW + 30, in_chain=True)
    assert len(io.seen) == 1


def test_in_a_chain_other_failures_keep_their_retries() -> None:
    info, io = get(make(APP), TransportError("timeout", "slow"), None, EPOCH_REPLY, in_chain=True)
    assert sleeps(io) == [0.0]
    assert info.token == TOKEN
    # A refused connection after the first request is not retried in a chain, and not remembered.
    cred = make(APP)
    error, io = fail(cred, json_reply(503, {}), None, TransportError("connect", "refused"), in_chain=True)
    assert type(error) is CredentialUnavailableError
    _, io = get(cred, EPOCH_REPLY, in_chain=True)
    assert len(io.seen) == 1


def test_standalone_a_refused_connection_is_retried() -> None:
    _, io = get(make(APP), TransportError("connect", "refused"), None, EPOCH_REPLY)
    assert len(requests(io)) == 2


def test_closing_a_chain_fetch_closes_the_source_flow() -> None:
    cred = make(APP)
    flow = cred.fetch_flow(call(in_chain=True), cred.cache_key(call()), NOW)
    assert isinstance(next(flow), HttpRequest)
    flow.close()  # a cancelled caller: no error, nothing remembered
    assert cred._failure is None


# -- row 8: the Azure Arc agent --


def test_an_installed_arc_agent_turns_imds_into_arc() -> None:
    cred = make(platform="linux")
    assert cred.source == "imds"
    found = FileContent(b"", 1024, 1)
    info, io = get(cred, found, token_reply(expires_in="3600"))
    look, request = io.seen
    assert look == ReadFile("/opt/azcmagent/bin/himds", max_bytes=0)
    assert isinstance(request, HttpRequest)
    assert request.url == f"{ARC_ENDPOINT}?api-version=2020-06-01&resource={RESOURCE_Q}"
    assert request.headers[:3] == base_headers("linux")
    assert info.source == "ManagedIdentityCredential:arc"
    assert cred.source == "arc"
    # Remembered: no second look, and the cache identity stays what construction said.
    _, io = get(cred, token_reply(expires_in="3600"), scope="https://storage.azure.com/.default")
    assert [type(effect) for effect in io.seen] == [HttpRequest]
    assert cred.cache_key(call())[3] == "mi:imds:system"
    # The probe is for IMDS only.
    _, io = get(make(platform="linux"), found, token_reply(expires_in="3600"), in_chain=True)
    assert len(requests(io)) == 1


@pytest.mark.parametrize(
    "answer", [TransportError("file_not_found", "no"), TransportError("file_error", "a directory"), None]
)
def test_without_the_agent_it_stays_imds(answer: object) -> None:
    cred = make(platform="linux")
    _, io = get(cred, answer, token_reply(expires_in="3600"))  # type: ignore[arg-type]
    assert requests(io)[0].url.startswith("http://169.254.169.254/")
    assert cred.source == "imds"
    _, io = get(cred, token_reply(expires_in="3600"), scope="https://storage.azure.com/.default")
    assert len(io.seen) == 1


def test_the_windows_agent_path() -> None:
    cred = make({"ProgramFiles": "C:\\Program Files\\"}, platform="win32")
    _, io = get(cred, TransportError("file_not_found", "no"), token_reply(expires_in="3600"))
    assert io.seen[0] == ReadFile("C:\\Program Files\\AzureConnectedMachineAgent\\himds.exe", max_bytes=0)
    _, io = get(make({}, platform="win32"), token_reply(expires_in="3600"))
    assert len(io.seen) == 1  # no PROGRAMFILES: nowhere to look


def test_an_explicit_imds_endpoint_skips_the_agent_check() -> None:
    _, io = get(make(platform="linux", imds_endpoint="http://127.0.0.1:9"), token_reply(expires_in="3600"))
    assert len(io.seen) == 1


# -- the workload-identity branch (§4.1 row 6) --


def workload_replies() -> tuple[FileContent, HttpResponse]:
    return FileContent(b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwb2QifQ.c2ln", 44, 1), json_reply(
        200, {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"}
    )


@pytest.mark.parametrize(("options", "client"), [({}, "client-w"), ({"client_id": "client-mi"}, "client-mi")])
def test_the_workload_branch_delegates_and_caches_here(options: dict[str, Any], client: str) -> None:
    cred = make(WORKLOAD, **options)
    info, io = get(cred, *workload_replies())
    read, post = io.seen
    assert read == ReadFile(WORKLOAD["AZURE_FEDERATED_TOKEN_FILE"], max_bytes=65536)
    assert isinstance(post, HttpRequest)
    assert post.url == "https://login.microsoftonline.com/tenant-w/oauth2/v2.0/token"
    assert ("client_id", client) in parse_qsl(post.body.decode())
    assert ("scope", SCOPE) in parse_qsl(post.body.decode())
    assert info.token == TOKEN
    assert len(cred.token_cache) == 1
    _, io = get(cred)
    assert io.seen == []


def test_the_workload_branch_uses_dacs_client_id_and_refuses_other_selectors() -> None:
    env = {name: value for name, value in WORKLOAD.items() if name != "AZURE_CLIENT_ID"}
    with pytest.raises(ConfigError, match="the workload identity branch needs client_id or AZURE_CLIENT_ID"):
        make(env)
    assert make(env, _inherited_client_id="c-dac")._identity == "mi:workload_identity:client_id=c-dac"
    with pytest.raises(ConfigError, match="object_id is invalid: the workload identity branch takes only"):
        make(WORKLOAD, object_id="o-1")


def test_the_workload_branch_in_a_chain() -> None:
    cred = make(WORKLOAD)
    token_file, _ = workload_replies()
    error, _ = fail(cred, token_file, TransportError("connect", "refused"), in_chain=True)
    assert type(error) is CredentialUnavailableError
    assert str(error).startswith("ManagedIdentityCredential (workload_identity): the endpoint https://login")


# -- the seed's federated example: an MI token as a client assertion --


def test_two_app_token_misses_make_one_mi_request() -> None:
    mi = make()
    app = ClientAssertionCredential(
        "tenant-a", "client-app", mi.assertion("api://AzureADTokenExchange/.default"), env={}, entropy=entropy
    )
    exchange = token_reply(expires_in="86400")
    app_token = json_reply(200, {"access_token": "app-token", "expires_in": 3600})
    io = ScriptedIO(exchange, app_token, app_token)
    for scope in (SCOPE, "https://storage.azure.com/.default"):
        token_call = TokenCall((scope,), None, None, False)
        info = run(app.fetch_flow(token_call, app.cache_key(token_call), NOW), io)
        assert info.token == "app-token"
    mi_get, first, second = io.seen
    assert isinstance(mi_get, HttpRequest)
    assert isinstance(first, HttpRequest)
    assert isinstance(second, HttpRequest)
    assert mi_get.url.endswith("&resource=api%3A%2F%2FAzureADTokenExchange")
    for post in (first, second):
        assert ("client_assertion", TOKEN) in parse_qsl(post.body.decode())
    assert len(mi.token_cache) == 1
    assert not any(isinstance(effect, FunctionCall) for effect in io.seen)


def test_an_mi_failure_keeps_its_class_under_the_app_credential() -> None:
    app = ClientAssertionCredential(
        "tenant-a", "client-app", make().assertion("api://AzureADTokenExchange"), env={}
    )
    token_call = TokenCall((SCOPE,), None, None, False)
    io = ScriptedIO(json_reply(400, {"error": "invalid_request"}))
    with pytest.raises(NotConfiguredError) as caught:
        run(app.fetch_flow(token_call, app.cache_key(token_call), NOW), io)
    assert str(caught.value).startswith(
        "ClientAssertionCredential: the assertion could not be obtained: ManagedIdentityCredential (imds):"
    )
    assert isinstance(caught.value.__cause__, NotConfiguredError)


def test_the_assertion_source_checks_its_scope_and_pickles() -> None:
    with pytest.raises(ConfigError, match="scopes is invalid"):
        make().assertion("two words")
    source = make(client_id="c-1").assertion("api://AzureADTokenExchange/.default")
    assert isinstance(source, ManagedIdentityAssertion)
    assert repr(source) == (
        "ManagedIdentityAssertion(ManagedIdentityCredential(source='imds', client_id='c-1'), "
        "scope='api://AzureADTokenExchange/.default')"
    )
    copy = pickle.loads(pickle.dumps(source))
    assert repr(copy) == repr(source)
    app = pickle.loads(pickle.dumps(ClientAssertionCredential("t", "c", source, env={})))
    assert isinstance(app._func, ManagedIdentityAssertion)


def test_assertion_from_needs_the_clock_for_a_source() -> None:
    flow = assertion_from(make().assertion(SCOPE), owner="OnBehalfOfCredential")
    with pytest.raises(
        AzidError, match=r"^OnBehalfOfCredential: the assertion source needs the flow's clock"
    ):
        next(flow)


# -- secrets and pickling (§0.7, §7.4) --


def test_no_secret_in_reprs_errors_or_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    echo = f'{{"error":"bad","header":"{IDENTITY_HEADER}","secret":"{MSI_SECRET}","access_token":"{TOKEN}"}}'
    broken = TransportError("closed", f"peer said {IDENTITY_HEADER} {MSI_SECRET}")
    for env, secret in ((APP, IDENTITY_HEADER), (SF, IDENTITY_HEADER), (ML, MSI_SECRET)):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="azid"):
            cred = make(env)
            info, io = get(cred, EPOCH_REPLY)
            shown = [repr(cred), str(cred), repr(info), *map(repr, io.seen), repr(cred._record)]
            error, _ = fail(cred, HttpResponse(401, (), echo.encode()), claims="{}")
            shown += [str(error), repr(error), str(getattr(error, "body_excerpt", ""))]
            error, _ = fail(cred, broken, None, broken, None, broken, None, broken, claims="{}")
            shown.append(str(error))
        shown += [record.getMessage() for record in caplog.records]
        assert caplog.records
        for text in shown:
            assert secret not in text
            assert TOKEN not in text
    assert repr(AppServiceSource(APP_ENDPOINT, IDENTITY_HEADER)).endswith("identity_header='****')")
    assert repr(AzureMLSource(ML_ENDPOINT, MSI_SECRET)).endswith("secret='****')")


def test_construction_does_no_io_and_pickling_drops_runtime_state() -> None:
    cred = make(platform="linux", imds_endpoint=None)
    get(cred, FileContent(b"", 1, 1), token_reply(expires_in="3600"))
    assert cred.source == "arc"
    cred2 = make(imds_probe=True)
    fail(cred2, TransportError("timeout", "t"))
    for original in (cred, cred2):
        copy = pickle.loads(pickle.dumps(original))
        assert len(copy.token_cache) == 0
        assert copy._failure is None
        assert copy._probed is False
        assert copy.cache_key(call()) == original.cache_key(call())
    copy = pickle.loads(pickle.dumps(cred))
    assert copy.source == "imds"  # the agent is looked for again
    _, io = get(copy, TransportError("file_not_found", "gone"), token_reply(expires_in="3600"))
    assert requests(io)[0].url.startswith("http://169.254.169.254/")
    workload = pickle.loads(pickle.dumps(make(WORKLOAD)))
    info, _ = get(workload, *workload_replies())
    assert info.token == TOKEN


def test_a_refusal_without_json_has_no_error_code() -> None:
    error, _ = fail(make(SHELL), HttpResponse(401, (), b"<html>denied</html>"))
    assert isinstance(error, AuthError)
    assert (error.status, error.error) == (401, None)
    assert "<html>denied</html>" in str(error)


@pytest.mark.parametrize(
    ("url", "bypass"),
    [
        ("http://localhost:40342/metadata/identity/oauth2/token", True),
        ("http://LocalHost/x", True),
        ("http://127.0.0.5:8080/x", True),
        ("http://169.254.10.20/metadata/identity/oauth2/token", True),
        ("http://[::1]:5000/x", True),
        ("http://[fe80::1%25eth0]/x", True),
        ("https://10.0.0.1/x", False),
        ("https://example.invalid/x", False),
        ("http://127.0.0.1:99999/x", False),  # no port: no request is made there at all
    ],
)
def test_loopback_and_link_local_hosts_bypass_the_proxy(url: str, bypass: bool) -> None:
    assert bypasses_proxy(url) is bypass


def _bypass_by_ipaddress(host: str) -> bool:
    # The rule as first written, with ipaddress alone.
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_link_local


@given(
    st.text(alphabet="0123456789.", max_size=16)
    | st.tuples(*[st.integers(0, 300)] * 4).map(lambda n: ".".join(map(str, n)))
    | st.text(alphabet="0123456789abcdef:.%", max_size=12)
    | st.sampled_from(["127.0.0.1", "169.254.10.20", "169.254.0.1", "10.0.0.1", "01.2.3.4", "1.2.3.04"])
)
def test_bypass_is_what_ipaddress_says(host: str) -> None:
    assert host_bypasses_proxy(host) == _bypass_by_ipaddress(host)
