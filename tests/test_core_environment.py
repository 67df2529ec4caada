"""EnvironmentCredential: the three groups, precedence, empty = unset, the chain flag, the
unavailable message and ConfigErrors, delegation to the inner credential (PROTOCOL.md §2.5, §9)."""

from __future__ import annotations

import base64
import json
import logging
import pickle
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import jwt
import pytest

from azid_core.acquire import TokenCall, acquire_flow
from azid_core.blocking import new_event
from azid_core.drive import run
from azid_core.effects import FileContent, HttpRequest, HttpResponse, ReadFile
from azid_core.entra.certificate import CertificateCredential
from azid_core.entra.confidential import ClientSecretCredential
from azid_core.entra.environment import EnvironmentCredential
from azid_core.entra.password import UsernamePasswordCredential
from azid_core.errors import ConfigError, CredentialUnavailableError
from azid_core.flight import FlightTable
from azid_core.testing import EntraEmulator, ScriptedIO
from tests import certs

if TYPE_CHECKING:
    from azid_core.effects import Reply
    from azid_core.tokens import AccessTokenInfo

NOW = 1_700_000_000.0
SCOPE = "https://vault.azure.net/.default"
TENANT, CLIENT = "tenant-env", "client-env"
SECRET, PASSWORD, CERT_PASSWORD = "env~Secret.value-9", "env-Pa55word!", "cert-Pa55word!"
SECRET_ENV = {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT, "AZURE_CLIENT_SECRET": SECRET}
CERT_ENV = {
    "AZURE_TENANT_ID": TENANT,
    "AZURE_CLIENT_ID": CLIENT,
    "AZURE_CLIENT_CERTIFICATE_PATH": "/certs/app.pem",
}
USER_ENV = {"AZURE_CLIENT_ID": CLIENT, "AZURE_USERNAME": "ada@contoso.com", "AZURE_PASSWORD": PASSWORD}
TOKEN = HttpResponse(200, (), json.dumps({"access_token": "at-env", "expires_in": 3600}).encode())


def call(tenant_id: str | None = None) -> TokenCall:
    return TokenCall((SCOPE,), None, tenant_id, False)


def fetch(cred: EnvironmentCredential, *replies: Reply | BaseException) -> tuple[AccessTokenInfo, ScriptedIO]:
    io = ScriptedIO(*replies)
    info = run(acquire_flow(cred, call(), FlightTable(new_event), NOW), io)
    assert io.unused == 0
    return info, io


def user_credential(env: dict[str, str]) -> EnvironmentCredential:
    with pytest.warns(DeprecationWarning, match="UsernamePasswordCredential is deprecated"):
        return EnvironmentCredential(env=env)


# -- the groups (§2.5) --


def test_the_secret_group_builds_a_client_secret_credential() -> None:
    cred = EnvironmentCredential(env=SECRET_ENV, authority="login.microsoftonline.us", request_timeout=12)
    assert repr(cred) == (
        f"EnvironmentCredential(ClientSecretCredential(tenant_id='{TENANT}', client_id='{CLIENT}', "
        "authority='https://login.microsoftonline.us'))"
    )
    assert isinstance(cred._inner, ClientSecretCredential)
    info, io = fetch(cred, TOKEN)
    assert info.token == "at-env"
    [request] = io.seen
    assert isinstance(request, HttpRequest)
    assert request.url == f"https://login.microsoftonline.us/{TENANT}/oauth2/v2.0/token"
    assert request.timeout == 12.0
    assert dict(parse_qsl(request.body.decode()))["client_secret"] == SECRET
    # The TokenSource is delegated: the inner credential's cache holds the token, keyed by its identity.
    assert cred.token_cache is cred._inner.token_cache
    assert len(cred.token_cache) == 1
    assert cred.cache_key(call()) == cred._inner.cache_key(call())
    assert cred.cache_key(call())[3] == f"secret:https://login.microsoftonline.us:{CLIENT}"


def test_the_certificate_group_reads_the_file_with_its_password_at_the_first_request() -> None:
    pair = certs.issued()
    env = {
        **CERT_ENV,
        "AZURE_CLIENT_CERTIFICATE_PASSWORD": CERT_PASSWORD,
        "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN": "1",
    }
    cred = EnvironmentCredential(env=env)
    assert isinstance(cred._inner, CertificateCredential)
    data = pair.pfx(CERT_PASSWORD.encode(), extra=[certs.ca().cert])
    _, io = fetch(cred, FileContent(data, len(data), 1), TOKEN)
    read, request = io.seen
    assert isinstance(read, ReadFile)
    assert read.path == "/certs/app.pem"
    assert isinstance(request, HttpRequest)
    header = jwt.get_unverified_header(dict(parse_qsl(request.body.decode()))["client_assertion"])
    assert header["x5c"] == [base64.b64encode(der).decode() for der in (pair.der, certs.ca().der)]


@pytest.mark.parametrize(
    ("value", "chain"),
    [
        ("1", True),
        ("true", True),
        (" TRUE\n", True),
        ("True", True),
        ("false", False),
        ("0", False),
        ("yes", False),
        ("", False),
        (None, False),
    ],
)
def test_the_chain_flag_is_on_only_for_1_or_true(value: str | None, chain: bool) -> None:
    env = dict(CERT_ENV)
    if value is not None:
        env["AZURE_CLIENT_SEND_CERTIFICATE_CHAIN"] = value
    cred = EnvironmentCredential(env=env)
    assert isinstance(cred._inner, CertificateCredential)
    assert cred._inner._signer._send_chain is chain
    assert cred._inner._signer._password is None  # no password variable: none


def test_the_username_password_group_warns_and_defaults_to_organizations() -> None:
    cred = user_credential(USER_ENV)
    assert isinstance(cred._inner, UsernamePasswordCredential)
    assert cred._inner._tenant_id == "organizations"
    assert repr(cred).startswith("EnvironmentCredential(UsernamePasswordCredential(client_id='client-env', ")
    cred = user_credential({**USER_ENV, "AZURE_TENANT_ID": TENANT})
    assert isinstance(cred._inner, UsernamePasswordCredential)
    assert cred._inner._tenant_id == TENANT


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        ({**SECRET_ENV, **CERT_ENV, **USER_ENV}, ClientSecretCredential),
        ({**CERT_ENV, **USER_ENV}, CertificateCredential),
        ({**SECRET_ENV, **CERT_ENV, "AZURE_CLIENT_SECRET": ""}, CertificateCredential),
        ({**CERT_ENV, "AZURE_CLIENT_CERTIFICATE_PATH": "", **SECRET_ENV}, ClientSecretCredential),
    ],
)
def test_the_first_complete_group_wins_and_empty_means_unset(env: dict[str, str], kind: type) -> None:
    assert isinstance(EnvironmentCredential(env=env)._inner, kind)


def test_empty_username_falls_through_to_unavailable() -> None:
    cred = EnvironmentCredential(env={**USER_ENV, "AZURE_USERNAME": ""})
    assert cred._inner is None


# -- no complete group --


def test_without_a_complete_group_every_call_is_unavailable_naming_set_and_missing_names() -> None:
    env = {
        "AZURE_TENANT_ID": "tenant-zzz",
        "AZURE_CLIENT_SECRET": SECRET,
        "AZURE_PASSWORD": PASSWORD,
        "AZURE_USERNAME": "",
    }
    cred = EnvironmentCredential(env=env)
    assert repr(cred) == "EnvironmentCredential(unavailable)"
    cache = cred.token_cache
    for _ in range(2):
        with pytest.raises(CredentialUnavailableError) as caught:
            fetch(cred)
        message = str(caught.value)
        assert message == (
            "EnvironmentCredential: the environment configures no credential (set: AZURE_TENANT_ID, "
            "AZURE_CLIENT_SECRET, AZURE_PASSWORD; missing: AZURE_CLIENT_ID, AZURE_CLIENT_CERTIFICATE_PATH, "
            "AZURE_USERNAME). Set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or "
            "AZURE_CLIENT_CERTIFICATE_PATH; or AZURE_CLIENT_ID, AZURE_USERNAME and AZURE_PASSWORD"
        )
        for value in ("tenant-zzz", SECRET, PASSWORD):
            assert value not in message
    assert cred.token_cache is cache  # stable: the frontends bind its `serve` at construction
    assert len(cache) == 0
    with pytest.raises(CredentialUnavailableError, match=r"\(set: none; missing: AZURE_TENANT_ID, "):
        EnvironmentCredential(env={}).fetch_flow(call(), ((SCOPE,), TENANT, False, "x"), NOW)


def test_env_none_reads_the_process_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    cred = EnvironmentCredential()
    monkeypatch.delenv("AZURE_CLIENT_SECRET")
    assert isinstance(cred._inner, ClientSecretCredential)
    assert cred._inner._client_secret == SECRET


# -- bad values --


@pytest.mark.parametrize(
    ("env", "options", "name"),
    [
        ({**SECRET_ENV, "AZURE_TENANT_ID": "bad tenant"}, {}, "AZURE_TENANT_ID"),
        ({**SECRET_ENV, "AZURE_CLIENT_ID": "   "}, {}, "AZURE_CLIENT_ID"),
        ({**CERT_ENV, "AZURE_TENANT_ID": "-x"}, {}, "AZURE_TENANT_ID"),
        ({**SECRET_ENV, "AZURE_AUTHORITY_HOST": "ftp://x"}, {}, "AZURE_AUTHORITY_HOST"),
        (SECRET_ENV, {"authority": "http://insecure"}, "authority"),
        (SECRET_ENV, {"request_timeout": 0}, "request_timeout"),
        (SECRET_ENV, {"additionally_allowed_tenants": "t"}, "additionally_allowed_tenants"),
    ],
)
def test_bad_values_are_config_errors_at_construction(
    env: dict[str, str], options: dict[str, Any], name: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        EnvironmentCredential(env=env, **options)
    message = str(caught.value)
    assert message.startswith(f"EnvironmentCredential: {name} is invalid")
    assert SECRET not in message
    assert isinstance(caught.value.__cause__, ConfigError)


def test_a_bad_username_group_value_warns_then_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^EnvironmentCredential: AZURE_TENANT_ID is invalid"):
        user_credential({**USER_ENV, "AZURE_TENANT_ID": "bad tenant"})


def test_options_reach_the_inner_credential() -> None:
    def entropy(size: int) -> bytes:
        return b"\x07" * size

    cred = EnvironmentCredential(
        env={**SECRET_ENV, "AZURE_HTTP_USER_AGENT": "envapp/1"},
        additionally_allowed_tenants=["tenant-b"],
        disable_instance_discovery=True,
        entropy=entropy,
    )
    io = ScriptedIO(TOKEN)
    run(acquire_flow(cred, call("tenant-b"), FlightTable(new_event), NOW), io)
    request = io.seen[0]
    assert isinstance(request, HttpRequest)
    assert request.url == "https://login.microsoftonline.com/tenant-b/oauth2/v2.0/token"
    headers = dict(request.headers)
    assert headers["User-Agent"].endswith(" envapp/1")
    assert headers["x-ms-client-request-id"].startswith("07070707-")


def test_no_secret_in_repr_errors_or_logs_and_pickling(caplog: pytest.LogCaptureFixture) -> None:
    emulator = EntraEmulator(clock=lambda: NOW)
    emulator.add_app(TENANT, CLIENT, "another-secret")
    cred = EnvironmentCredential(env=SECRET_ENV)
    with caplog.at_level(logging.DEBUG, logger="azid"), pytest.raises(Exception) as caught:  # noqa: PT011
        run(acquire_flow(cred, call(), FlightTable(new_event), NOW), emulator)  # type: ignore[arg-type]
    assert "invalid_client" in str(caught.value)
    assert caplog.records
    for text in (repr(cred), str(caught.value), caplog.text, repr(user_credential(USER_ENV))):
        assert SECRET not in text
        assert PASSWORD not in text
    copy = pickle.loads(pickle.dumps(cred))
    assert repr(copy) == repr(cred)
    assert copy.cache_key(call()) == cred.cache_key(call())
