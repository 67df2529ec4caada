"""OnBehalfOfCredential and EnvironmentCredential through every adapter path, against the Entra
emulator on loopback HTTPS (PROTOCOL.md §2, §2.5, §3.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import pytest

from azid_core.entra.environment import EnvironmentCredential
from azid_core.entra.obo import OnBehalfOfCredential
from azid_core.errors import CredentialUnavailableError
from tests import certs
from tests.conftest import CLIENT, SECRET, TENANT, FakeClock

if TYPE_CHECKING:
    import pathlib
    from collections.abc import Callable

    from azid_core.effects import HttpRequest
    from azid_core.testing import EntraEmulator
    from tests.loopback import LoopbackServer
    from tests.paths import Path

GRAPH = "https://graph.microsoft.com/.default"
VAULT = "https://vault.azure.net/.default"
OBO = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def grant(request: HttpRequest) -> str:
    return dict(parse_qsl(request.body.decode()))["grant_type"]


def test_obo_with_a_secret_refreshes_then_falls_back(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    assertion = emulator.user_token(TENANT, CLIENT, upn="ada@contoso.com", oid="oid-ada")
    core = OnBehalfOfCredential(
        TENANT, CLIENT, user_assertion=assertion, client_secret=SECRET, authority=server.url, env={}
    )
    cred = path.credential(core, clock)
    token = path.get_token(cred, GRAPH)
    claims = emulator.decode(token.token)
    assert (claims["upn"], claims["oid"], claims["aud"]) == (
        "ada@contoso.com",
        "oid-ada",
        "https://graph.microsoft.com",
    )
    assert path.get_token(cred, GRAPH) == token  # cached
    clock.advance(3400)  # within 5 minutes of expiry: the refresh token is used
    assert path.get_token(cred, GRAPH) != token
    # Another scope is a cache miss too. Revoked refresh tokens: invalid_grant, then the OBO grant.
    emulator.refresh_tokens.clear()
    vault = emulator.decode(path.get_token(cred, VAULT).token)
    assert (vault["upn"], vault["aud"]) == ("ada@contoso.com", "https://vault.azure.net")
    assert [grant(r) for r in emulator.requests] == [OBO, "refresh_token", "refresh_token", OBO]
    path.close(cred)


def test_obo_with_a_certificate(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    emulator.apps[(TENANT, CLIENT)].add_certificate(certs.leaf().cert_pem)
    assertion = emulator.user_token(TENANT, CLIENT, upn="bob@contoso.com", oid="oid-bob")
    core = OnBehalfOfCredential(
        TENANT,
        CLIENT,
        user_assertion=assertion,
        client_certificate=certs.leaf().pfx(b"pw"),
        password="pw",
        authority=server.url,
        env={},
    )
    cred = path.credential(core, clock)
    assert emulator.decode(path.get_token(cred, VAULT).token)["upn"] == "bob@contoso.com"
    sent = dict(parse_qsl(emulator.requests[0].body.decode()))
    assert "client_secret" not in sent
    assert sent["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    path.close(cred)


def test_environment_secret_group(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    env = {
        "AZURE_TENANT_ID": TENANT,
        "AZURE_CLIENT_ID": CLIENT,
        "AZURE_CLIENT_SECRET": SECRET,
        "AZURE_AUTHORITY_HOST": server.url,
    }
    cred = path.credential(EnvironmentCredential(env=env), clock)
    token = path.get_token(cred, VAULT)
    assert emulator.decode(token.token)["appid"] == CLIENT
    assert path.get_token(cred, VAULT) == token
    assert emulator.token_requests == 1
    path.close(cred)


def test_environment_certificate_group(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock, tmp_path: pathlib.Path
) -> None:
    emulator.apps[(TENANT, CLIENT)].add_certificate(certs.leaf().cert_pem)
    pem = tmp_path / "app.pem"
    pem.write_bytes(certs.leaf().pem(b"pem-pass"))
    env = {
        "AZURE_TENANT_ID": TENANT,
        "AZURE_CLIENT_ID": CLIENT,
        "AZURE_CLIENT_CERTIFICATE_PATH": str(pem),
        "AZURE_CLIENT_CERTIFICATE_PASSWORD": "pem-pass",
        "AZURE_CLIENT_SECRET": "",  # empty = unset: the certificate group wins
    }
    cred = path.credential(EnvironmentCredential(env=env, authority=server.url), clock)
    assert emulator.decode(path.get_token(cred, VAULT).token)["appid"] == CLIENT
    path.close(cred)


def test_environment_without_a_group_is_unavailable(path: Path, clock: FakeClock) -> None:
    cred = path.credential(EnvironmentCredential(env={"AZURE_CLIENT_ID": CLIENT}), clock)
    for _ in range(2):
        with pytest.raises(
            CredentialUnavailableError, match=r"set: AZURE_CLIENT_ID; missing: AZURE_TENANT_ID"
        ):
            path.get_token(cred, VAULT)
    path.close(cred)


def test_obo_with_an_assertion_function(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    """A plain function on the sync paths, an `async def` on the async ones; called on every request."""
    issuer, subject = "https://issuer.example", "system:serviceaccount:ns:api"
    emulator.apps[(TENANT, CLIENT)].federated.append((issuer, subject))
    calls: list[int] = []

    def make() -> str:
        calls.append(1)
        return emulator.federated_token(issuer, subject)

    async def async_make() -> str:
        return make()

    func: Callable[[], Any] = async_make if path.is_async else make
    assertion = emulator.user_token(TENANT, CLIENT, upn="cy@contoso.com", oid="oid-cy")
    core = OnBehalfOfCredential(
        TENANT, CLIENT, user_assertion=assertion, client_assertion_func=func, authority=server.url, env={}
    )
    cred = path.credential(core, clock)
    assert emulator.decode(path.get_token(cred, GRAPH).token)["upn"] == "cy@contoso.com"
    assert (
        emulator.decode(path.get_token(cred, VAULT).token)["upn"] == "cy@contoso.com"
    )  # via the refresh token
    assert len(calls) == 2
    assert [grant(r) for r in emulator.requests] == [OBO, "refresh_token"]
    path.close(cred)
