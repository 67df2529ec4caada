"""ClientAssertionCredential, WorkloadIdentityCredential and AzurePipelinesCredential through every
adapter path, against the Entra emulator on loopback HTTPS (PROTOCOL.md §2.1, §2.3, §2.4)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import trustme

from azid_core.entra.assertion import ClientAssertionCredential
from azid_core.entra.federated import AzurePipelinesCredential, WorkloadIdentityCredential
from azid_core.errors import AuthError, CredentialUnavailableError, NotConfiguredError
from tests.conftest import CLIENT, TENANT, FakeClock

if TYPE_CHECKING:
    import pathlib
    from collections.abc import Callable

    from azid_core.effects import HttpRequest
    from azid_core.testing import EntraEmulator
    from tests.loopback import LoopbackServer
    from tests.paths import Path

VAULT = "https://vault.azure.net/.default"
STORAGE = "https://storage.azure.com/.default"
ISSUER = "https://oidc.prod-aks.azure.com/00000000-0000-0000-0000-0000000000aa/"
SUBJECT = "system:serviceaccount:default:workload"
OTHER_SUBJECT = "system:serviceaccount:default:rotated"
CONNECTION = "sc-0001"


def sent(request: HttpRequest) -> dict[str, str]:
    return dict(parse_qsl(request.body.decode()))


def token_posts(emulator: EntraEmulator) -> list[HttpRequest]:
    return [r for r in emulator.requests if r.url.endswith("/oauth2/v2.0/token")]


@pytest.fixture
def federated(emulator: EntraEmulator) -> EntraEmulator:
    emulator.apps[(TENANT, CLIENT)].federated.extend([(ISSUER, SUBJECT), (ISSUER, OTHER_SUBJECT)])
    return emulator


def assertion_function(path: Path, make: Callable[[], str], calls: list[int]) -> Callable[[], Any]:
    """A plain function on the sync paths, an `async def` on the async ones."""
    if path.is_async:

        async def async_assertion() -> str:
            calls.append(1)
            return make()

        return async_assertion

    def assertion() -> str:
        calls.append(1)
        return make()

    return assertion


# -- ClientAssertionCredential (§2.1) --


def test_client_assertion_from_the_users_function(
    path: Path, server: LoopbackServer, federated: EntraEmulator, clock: FakeClock
) -> None:
    calls: list[int] = []
    func = assertion_function(path, lambda: federated.federated_token(ISSUER, SUBJECT), calls)
    cred = path.credential(
        ClientAssertionCredential(TENANT, CLIENT, func, authority=server.url, env={}), clock
    )
    token = path.get_token(cred, VAULT)
    assert federated.decode(token.token)["appid"] == CLIENT
    assert path.get_token(cred, VAULT) == token  # served from the cache: no new assertion
    assert len(calls) == 1
    path.get_token(cred, STORAGE)  # a miss calls the function again
    assert len(calls) == 2
    [first, _] = token_posts(federated)
    assert sent(first)["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    path.close(cred)


def test_a_plain_function_serves_every_path(
    path: Path, server: LoopbackServer, federated: EntraEmulator, clock: FakeClock
) -> None:
    # azure-identity's async credentials take a plain function too: the async frontends call it and
    # await the result only when it is awaitable.
    cred = path.credential(
        ClientAssertionCredential(
            TENANT, CLIENT, lambda: federated.federated_token(ISSUER, SUBJECT), authority=server.url, env={}
        ),
        clock,
    )
    assert federated.decode(path.get_token(cred, VAULT).token)["appid"] == CLIENT
    path.close(cred)


def test_a_raising_function_is_a_typed_error_with_its_cause(
    path: Path, server: LoopbackServer, federated: EntraEmulator, clock: FakeClock
) -> None:
    raised = ValueError("the vault is sealed")

    def fail() -> str:
        raise raised

    if path.is_async:

        async def func() -> str:
            return fail()

        cred = path.credential(
            ClientAssertionCredential(TENANT, CLIENT, func, authority=server.url, env={}), clock
        )
    else:
        cred = path.credential(
            ClientAssertionCredential(TENANT, CLIENT, fail, authority=server.url, env={}), clock
        )
    with pytest.raises(AuthError) as caught:
        path.get_token(cred, VAULT)
    assert str(caught.value) == (
        "ClientAssertionCredential: the assertion function raised ValueError: the vault is sealed"
    )
    assert caught.value.__cause__ is raised
    assert federated.requests == []
    path.close(cred)


def test_an_unavailable_error_from_the_function_stays_unavailable(
    path: Path, server: LoopbackServer, federated: EntraEmulator, clock: FakeClock
) -> None:
    raised = CredentialUnavailableError("ManagedIdentityCredential: no managed identity here")

    def fail() -> str:
        raise raised

    cred = path.credential(
        ClientAssertionCredential(TENANT, CLIENT, fail, authority=server.url, env={}), clock
    )
    with pytest.raises(CredentialUnavailableError) as caught:
        path.get_token(cred, VAULT)
    assert type(caught.value) is CredentialUnavailableError
    assert caught.value.__cause__ is raised
    path.close(cred)


# -- WorkloadIdentityCredential (§2.3) --


def write_token(file: pathlib.Path, token: str, mtime_ns: int | None = None) -> None:
    file.write_text(f"{token}\n")
    if mtime_ns is not None:
        os.utime(file, ns=(mtime_ns, mtime_ns))


def test_workload_identity_follows_the_rotated_token_file(
    path: Path, server: LoopbackServer, federated: EntraEmulator, clock: FakeClock, tmp_path: pathlib.Path
) -> None:
    file = tmp_path / "azure-identity-token"
    write_token(file, federated.federated_token(ISSUER, SUBJECT), 1_000_000_000)
    env = {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT, "AZURE_FEDERATED_TOKEN_FILE": str(file)}
    cred = path.credential(WorkloadIdentityCredential(authority=server.url, env=env), clock)
    token = path.get_token(cred, VAULT)
    assert federated.decode(token.token)["appid"] == CLIENT
    rotated = federated.federated_token(ISSUER, OTHER_SUBJECT)
    write_token(file, rotated, 2_000_000_000)
    clock.advance(10)
    path.get_token(cred, STORAGE)
    assert [sent(r)["client_assertion"] for r in token_posts(federated)][1] == rotated
    path.close(cred)


def test_an_expired_copy_is_replaced_after_aadsts700024(
    path: Path, server: LoopbackServer, federated: EntraEmulator, clock: FakeClock, tmp_path: pathlib.Path
) -> None:
    file = tmp_path / "token"
    short_lived = federated.federated_token(ISSUER, SUBJECT, lifetime=100)
    write_token(file, short_lived, 1_000_000_000)
    core = WorkloadIdentityCredential(
        tenant_id=TENANT, client_id=CLIENT, token_file_path=str(file), authority=server.url, env={}
    )
    cred = path.credential(core, clock)
    path.get_token(cred, VAULT)
    clock.advance(200)  # the copy is 200 s old (< 300 s) and its token expired
    fresh = federated.federated_token(ISSUER, SUBJECT)
    write_token(file, fresh, 1_000_000_000)  # rotated, but the mtime did not move
    token = path.get_token(cred, STORAGE)
    assert federated.decode(token.token)["aud"] == "https://storage.azure.com"
    assert [sent(r)["client_assertion"] for r in token_posts(federated)] == [short_lived, short_lived, fresh]
    path.close(cred)


def test_an_expired_token_file_is_an_auth_error_after_one_reread(
    path: Path, server: LoopbackServer, federated: EntraEmulator, clock: FakeClock, tmp_path: pathlib.Path
) -> None:
    file = tmp_path / "token"
    write_token(file, federated.federated_token(ISSUER, SUBJECT, lifetime=0))
    core = WorkloadIdentityCredential(
        tenant_id=TENANT, client_id=CLIENT, token_file_path=str(file), authority=server.url, env={}
    )
    cred = path.credential(core, clock)
    with pytest.raises(AuthError) as caught:
        path.get_token(cred, VAULT)
    assert caught.value.error_codes == (700024,)
    assert len(token_posts(federated)) == 1
    path.close(cred)


def test_a_missing_token_file_is_not_configured(
    path: Path, server: LoopbackServer, federated: EntraEmulator, clock: FakeClock, tmp_path: pathlib.Path
) -> None:
    core = WorkloadIdentityCredential(
        tenant_id=TENANT,
        client_id=CLIENT,
        token_file_path=str(tmp_path / "absent"),
        authority=server.url,
        env={},
    )
    cred = path.credential(core, clock)
    with pytest.raises(NotConfiguredError, match=r"cannot be read \(file_not_found\)"):
        path.get_token(cred, VAULT)
    assert federated.requests == []
    path.close(cred)


def test_the_aks_token_proxy_with_its_sni_name_and_ca(
    path: Path,
    server: LoopbackServer,
    federated: EntraEmulator,
    clock: FakeClock,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    file = tmp_path / "token"
    write_token(file, federated.federated_token(ISSUER, SUBJECT))
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(server.ca().cert_pem.bytes())
    # The process trusts some other CA: only the proxy's CA file can make the handshake succeed.
    with trustme.CA().cert_pem.tempfile() as elsewhere:
        monkeypatch.setenv("SSL_CERT_FILE", elsewhere)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", elsewhere)
        env = {
            "AZURE_KUBERNETES_TOKEN_PROXY": f"{server.url}/aks/proxy/",
            "AZURE_KUBERNETES_SNI_NAME": "localhost",
            "AZURE_KUBERNETES_CA_FILE": str(ca_file),
        }
        core = WorkloadIdentityCredential(
            tenant_id=TENANT,
            client_id=CLIENT,
            token_file_path=str(file),
            enable_azure_proxy=True,
            authority="https://login.microsoftonline.com",
            env=env,
        )
        cred = path.credential(core, clock)
        token = path.get_token(cred, VAULT)
        assert federated.decode(token.token)["appid"] == CLIENT
        [request] = federated.requests
        assert urlsplit(request.url).path == f"/aks/proxy/{TENANT}/oauth2/v2.0/token"
        # A name the certificate does not carry: the SNI name is also the checked name.
        wrong = WorkloadIdentityCredential(
            tenant_id=TENANT,
            client_id=CLIENT,
            token_file_path=str(file),
            enable_azure_proxy=True,
            env={**env, "AZURE_KUBERNETES_SNI_NAME": "aks.example"},
        )
        other = path.credential(wrong, clock)
        with pytest.raises(CredentialUnavailableError, match=r"could not be reached \(tls\)"):
            path.get_token(other, VAULT)
        path.close(other)
        path.close(cred)


# -- AzurePipelinesCredential (§2.4) --


def pipelines_core(
    server: LoopbackServer, system_access_token: str, **options: Any
) -> AzurePipelinesCredential:
    uri = f"{server.url}/org/_apis/distributedtask/hubs/build/plans/p/jobs/j/oidctoken"
    return AzurePipelinesCredential(
        tenant_id=TENANT,
        client_id=CLIENT,
        service_connection_id=options.pop("service_connection_id", CONNECTION),
        system_access_token=system_access_token,
        authority=server.url,
        env={"SYSTEM_OIDCREQUESTURI": uri},
        **options,
    )


def test_pipelines_exchanges_the_service_connections_oidc_token(
    path: Path, server: LoopbackServer, federated: EntraEmulator, clock: FakeClock
) -> None:
    identity = federated.add_service_connection(federated.apps[(TENANT, CLIENT)], CONNECTION)
    cred = path.credential(pipelines_core(server, federated.system_access_token), clock)
    token = path.get_token(cred, VAULT)
    assert federated.decode(token.token)["appid"] == CLIENT
    oidc, exchange = federated.requests
    assert urlsplit(oidc.url).query == f"api-version=7.1&serviceConnectionId={CONNECTION}"
    headers = {name.lower(): value for name, value in oidc.headers}
    assert headers["authorization"] == f"Bearer {federated.system_access_token}"
    assert headers["x-tfs-fedauthredirect"] == "Suppress"
    claims = federated.decode(sent(exchange)["client_assertion"])
    assert (claims["iss"], claims["sub"]) == identity
    assert path.get_token(cred, VAULT) == token
    assert len(federated.requests) == 2
    path.close(cred)


def test_pipelines_refusals_name_the_tracing_headers(
    path: Path, server: LoopbackServer, federated: EntraEmulator, clock: FakeClock
) -> None:
    federated.add_service_connection(federated.apps[(TENANT, CLIENT)], CONNECTION)
    wrong_token = "not-the-system-access-token"
    cred = path.credential(pipelines_core(server, wrong_token), clock)
    with pytest.raises(AuthError) as caught:
        path.get_token(cred, VAULT)
    assert caught.value.status == 401
    assert "returned HTTP 401 (Unauthorized)" in str(caught.value)
    assert "x-vss-e2eid: e2e-" in str(caught.value)
    assert wrong_token not in str(caught.value)
    unknown = path.credential(
        pipelines_core(server, federated.system_access_token, service_connection_id="sc-unknown"), clock
    )
    with pytest.raises(AuthError, match=r"HTTP 404 \(Not Found\); check the service connection ID"):
        path.get_token(unknown, VAULT)
    assert len(token_posts(federated)) == 0
    path.close(cred)
    path.close(unknown)
