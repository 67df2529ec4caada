"""Per-call tenant resolution, table-tested through every service-principal credential (PROTOCOL.md
§1.3): configured vs requested vs additionally_allowed_tenants vs the wildcard vs
AZURE_IDENTITY_DISABLE_MULTITENANTAUTH. A refused tenant fails before any effect; an accepted one is
where the token request goes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from azid_core import (
    AzurePipelinesCredential,
    CertificateCredential,
    ClientAssertionCredential,
    ClientSecretCredential,
    EnvironmentCredential,
    OnBehalfOfCredential,
    WorkloadIdentityCredential,
)
from azid_core.acquire import TokenCall
from azid_core.drive import run
from azid_core.effects import FileContent, FunctionCall, FunctionResult, HttpRequest, HttpResponse, ReadFile
from azid_core.errors import ConfigError
from tests import certs

if TYPE_CHECKING:
    from collections.abc import Mapping

    from azid_core.acquire import TokenSource
    from azid_core.effects import Effect, Reply

NOW = 1_700_000_000.0
SCOPE = "https://vault.azure.net/.default"
AUTHORITY = "https://login.contoso.local"
OIDC = "https://pipelines.contoso.local/org/_apis/distributedtask/hubs/build/plans/p/jobs/j/oidctoken"


def secret(tenant: str, allowed: tuple[str, ...], env: Mapping[str, str]) -> TokenSource:
    return ClientSecretCredential(
        tenant, "app", "secret-value", authority=AUTHORITY, additionally_allowed_tenants=allowed, env=env
    )


def certificate(tenant: str, allowed: tuple[str, ...], env: Mapping[str, str]) -> TokenSource:
    return CertificateCredential(
        tenant,
        "app",
        certificate_data=certs.leaf().pem(),
        authority=AUTHORITY,
        additionally_allowed_tenants=allowed,
        env=env,
    )


def assertion(tenant: str, allowed: tuple[str, ...], env: Mapping[str, str]) -> TokenSource:
    return ClientAssertionCredential(
        tenant, "app", lambda: "unused", authority=AUTHORITY, additionally_allowed_tenants=allowed, env=env
    )


def workload(tenant: str, allowed: tuple[str, ...], env: Mapping[str, str]) -> TokenSource:
    return WorkloadIdentityCredential(
        tenant_id=tenant,
        client_id="app",
        token_file_path="/var/run/secrets/token",
        authority=AUTHORITY,
        additionally_allowed_tenants=allowed,
        env=env,
    )


def pipelines(tenant: str, allowed: tuple[str, ...], env: Mapping[str, str]) -> TokenSource:
    return AzurePipelinesCredential(
        tenant_id=tenant,
        client_id="app",
        service_connection_id="connection",
        system_access_token="system-token",
        authority=AUTHORITY,
        additionally_allowed_tenants=allowed,
        env={**env, "SYSTEM_OIDCREQUESTURI": OIDC},
    )


def obo(tenant: str, allowed: tuple[str, ...], env: Mapping[str, str]) -> TokenSource:
    return OnBehalfOfCredential(
        tenant,
        "app",
        user_assertion="user.assertion.value",
        client_secret="secret-value",
        authority=AUTHORITY,
        additionally_allowed_tenants=allowed,
        env=env,
    )


def environment(tenant: str, allowed: tuple[str, ...], env: Mapping[str, str]) -> TokenSource:
    variables = {"AZURE_TENANT_ID": tenant, "AZURE_CLIENT_ID": "app", "AZURE_CLIENT_SECRET": "secret-value"}
    return EnvironmentCredential(
        env={**env, **variables}, authority=AUTHORITY, additionally_allowed_tenants=allowed
    )


FACTORIES: dict[str, Any] = {
    "secret": secret,
    "certificate": certificate,
    "assertion": assertion,
    "workload": workload,
    "pipelines": pipelines,
    "obo": obo,
    "environment": environment,
}


class Service:
    """Answers every effect a service-principal grant may yield, and records the token URLs."""

    def __init__(self) -> None:
        self.token_urls: list[str] = []

    def __call__(self, effect: Effect) -> Reply:
        if isinstance(effect, ReadFile):
            return FileContent(b"federated.assertion.value", 25, 1)
        if isinstance(effect, FunctionCall):
            return FunctionResult("client.assertion.value")
        assert isinstance(effect, HttpRequest)
        if effect.url.startswith(OIDC):
            return HttpResponse(200, (), json.dumps({"oidcToken": "oidc.token.value"}).encode())
        self.token_urls.append(effect.url)
        return HttpResponse(200, (), json.dumps({"access_token": "tok", "expires_in": 3600}).encode())


ROWS = [
    # configured, requested, allowed, multitenant disabled, expected (None: ConfigError)
    ("t1", None, (), False, "t1"),
    ("t1", "t1", (), False, "t1"),
    ("t1", "t2", (), False, None),
    ("t1", "t2", ("t2",), False, "t2"),
    ("t1", "t2", ("t3",), False, None),
    ("t1", "t2", ("*",), False, "t2"),
    ("t1", "t2", ("*",), True, "t1"),
    ("t1", "t2", ("t2",), True, "t1"),
    ("organizations", "t2", (), False, "t2"),
    ("organizations", "t2", ("t3",), False, None),
    ("t1", "bad tenant!", ("*",), False, None),
]


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize(("configured", "requested", "allowed", "disabled", "expected"), ROWS)
def test_tenant_resolution(
    name: str,
    configured: str,
    requested: str | None,
    allowed: tuple[str, ...],
    disabled: bool,
    expected: str | None,
) -> None:
    env = {"AZURE_IDENTITY_DISABLE_MULTITENANTAUTH": "1"} if disabled else {}
    cred = FACTORIES[name](configured, allowed, env)
    call = TokenCall((SCOPE,), None, requested, False)
    if expected is None:
        with pytest.raises(ConfigError) as info:
            cred.cache_key(call)
        assert "tenant_id is invalid" in str(info.value)
        return
    key = cred.cache_key(call)
    assert key[1] == expected
    service = Service()
    run(cred.fetch_flow(call, key, NOW), service)
    assert service.token_urls == [f"{AUTHORITY}/{expected}/oauth2/v2.0/token"]
