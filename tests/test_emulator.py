"""The identity emulator as a product (issue 9): RS256 tokens that verify with pyjwt against the JWKS it
publishes (and only its own), the OpenID configuration, the claims resource servers check, one handler
for Entra ID and every managed-identity source, and faults injected in-process and on every adapter
path (PROTOCOL.md §0.1, §0.5, §1, §4)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jwt
import pytest

from azid_core import ClientSecretCredential, CredentialUnavailableError, TransportError
from azid_core.acquire import TokenCall
from azid_core.drive import run
from azid_core.effects import HttpRequest
from azid_core.managed_identity.credential import ManagedIdentityCredential
from azid_core.testing import EntraEmulator, Fault, IdentityEmulator, ManagedIdentityEmulator
from azid_core.testing.entra import JWT_BEARER
from azid_core.testing.managed_identity import IMDS_BASE, PATHS
from tests.conftest import CLIENT, SECRET, TENANT, FakeClock
from tests.loopback import LoopbackServer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from azid_core.effects import HttpResponse
    from tests.paths import Path

VAULT = "https://vault.azure.net/.default"
AUTHORITY = "https://login.emulator.test"
MI_TENANT = "https://sts.windows.net/mi-tenant/"


def token_request(scope: str = VAULT, tenant: str = TENANT, **fields: str) -> HttpRequest:
    form = {"client_id": CLIENT, "grant_type": "client_credentials", "scope": scope, **fields}
    if "client_assertion" not in fields:
        form["client_secret"] = SECRET
    return HttpRequest("POST", f"{AUTHORITY}/{tenant}/oauth2/v2.0/token", body=urlencode(form).encode())


def body(response: HttpResponse) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(response.body)
    return value


def access_token(emulator: EntraEmulator, scope: str = VAULT) -> str:
    response = emulator(token_request(scope))
    assert response.status == 200
    token: str = body(response)["access_token"]
    return token


def get(emulator: EntraEmulator, url: str) -> dict[str, Any]:
    response = emulator(HttpRequest("GET", url))
    assert (response.status, response.header("content-type")) == (200, "application/json; charset=utf-8")
    return body(response)


def verify(token: str, jwks: dict[str, Any], **checks: Any) -> dict[str, Any]:
    """Verify as a resource server does: the key the header's `kid` names in the JWKS, RS256 only."""
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["RS256"], **checks)
    return claims


# -- tokens, keys and documents --


def test_tokens_verify_with_pyjwt_against_the_published_jwks(signing_key: RSAPrivateKey) -> None:
    now = time.time()  # read, never waited on: pyjwt checks exp and nbf against the real clock
    emulator = IdentityEmulator(clock=lambda: now, signing_key=signing_key)
    app = emulator.add_app(TENANT, CLIENT, SECRET)
    token = access_token(emulator)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    jwks = get(emulator, f"{AUTHORITY}/{TENANT}/discovery/v2.0/keys")
    assert jwks == emulator.jwks()
    (published,) = jwks["keys"]
    assert (published["kty"], published["use"], published["alg"]) == ("RSA", "sig", "RS256")
    assert "d" not in published  # the public half only
    claims = verify(
        token,
        jwks,
        audience="https://vault.azure.net",
        issuer=f"https://sts.windows.net/{TENANT}/",
        options={"require": ["iss", "aud", "tid", "oid", "appid", "iat", "nbf", "exp"]},
    )
    assert (claims["tid"], claims["appid"], claims["oid"]) == (TENANT, CLIENT, app.object_id)
    assert claims["iat"] == int(now)
    assert claims["nbf"] == int(now) - 300  # back-dated for clients whose clocks run slow
    assert claims["exp"] == int(now) + 3600
    assert emulator.decode(token) == claims


def test_a_token_from_another_emulator_does_not_verify(emulator: IdentityEmulator) -> None:
    other = EntraEmulator(clock=emulator.clock)  # its own key, generated at its first token
    other.add_app(TENANT, CLIENT, SECRET)
    foreign = access_token(other)
    assert jwt.get_unverified_header(foreign)["kid"] != emulator.jwks()["keys"][0]["kid"]
    with pytest.raises(jwt.InvalidSignatureError):
        emulator.decode(foreign)
    with pytest.raises(KeyError, match="no key for kid"):  # no key in this emulator's JWKS has its kid
        verify(foreign, emulator.jwks())
    ours_key = jwt.PyJWK.from_dict(emulator.jwks()["keys"][0])
    with pytest.raises(jwt.InvalidSignatureError):  # nor does it verify with this emulator's key
        jwt.decode(foreign, ours_key, algorithms=["RS256"], options={"verify_aud": False})
    ours = access_token(emulator)
    assert emulator.decode(ours)["appid"] == CLIENT
    with pytest.raises(jwt.InvalidSignatureError):
        other.decode(ours)


def test_the_openid_configuration_names_the_tenant_endpoints(emulator: IdentityEmulator) -> None:
    base = f"{AUTHORITY}/{TENANT}"
    document = get(emulator, f"{base}/v2.0/.well-known/openid-configuration")
    assert document["issuer"] == f"{base}/v2.0"
    assert document["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert document["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert document["device_authorization_endpoint"] == f"{base}/oauth2/v2.0/devicecode"
    assert document["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert get(emulator, document["jwks_uri"]) == emulator.jwks()
    # A GET of the token endpoint is no endpoint at all.
    assert emulator(HttpRequest("GET", document["token_endpoint"])).status == 404


def test_the_key_is_made_at_the_first_token_and_kept() -> None:
    emulator = IdentityEmulator(clock=lambda: 1_800_000_000.0)
    emulator.add_app(TENANT, CLIENT, SECRET)
    assert emulator.key._private_key is None  # constructing costs no key generation
    first = access_token(emulator)
    kid = emulator.jwks()["keys"][0]["kid"]
    assert jwt.get_unverified_header(first)["kid"] == kid
    assert jwt.get_unverified_header(access_token(emulator))["kid"] == kid


def test_in_process_and_loopback_give_the_same_tokens(signing_key: RSAPrivateKey, path: Path) -> None:
    tokens = []
    for served in (False, True):
        emulator = IdentityEmulator(clock=FakeClock(), signing_key=signing_key)
        emulator.add_app(TENANT, CLIENT, SECRET)
        if served:
            with LoopbackServer(emulator, tls=False) as server:
                core = ClientSecretCredential(TENANT, CLIENT, SECRET, authority=server.url, env={})
                cred = path.credential(core, emulator.clock)
                tokens.append(path.get_token(cred, VAULT).token)
                path.close(cred)
        else:
            core = ClientSecretCredential(TENANT, CLIENT, SECRET, authority=AUTHORITY, env={})
            call = TokenCall((VAULT,), None, None, False)
            tokens.append(run(core.fetch_flow(call, core.cache_key(call), emulator.clock()), emulator).token)  # type: ignore[arg-type]
    assert tokens[0] == tokens[1]


# -- one emulator: Entra ID and managed identity on one handler --


def mi_request(
    source: str, emulator: IdentityEmulator, resource: str = "https://vault.azure.net"
) -> HttpRequest:
    url = f"http://127.0.0.1:1{PATHS[source]}?api-version=2019-08-01&resource={resource}"
    return HttpRequest("GET", url, (("X-IDENTITY-HEADER", emulator.managed_identity.identity_header),))


def test_managed_identity_tokens_share_the_key_and_serve_as_federated_assertions(
    emulator: IdentityEmulator,
) -> None:
    reply = body(emulator(mi_request("app_service", emulator, "api://AzureADTokenExchange")))
    system = emulator.managed_identity.system
    assert system is not None
    claims = verify(
        reply["access_token"],
        emulator.jwks(),
        audience="api://AzureADTokenExchange",
        issuer=MI_TENANT,
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},  # the fake clock's future
    )
    assert (claims["oid"], claims["appid"], claims["tid"]) == (
        system.object_id,
        system.client_id,
        "mi-tenant",
    )
    assert claims["nbf"] == claims["iat"] - 300
    # The app trusts the managed identity: its token is the client assertion (§2.3).
    emulator.apps[(TENANT, CLIENT)].add_federated(MI_TENANT, system.object_id)
    exchange = token_request(client_assertion=reply["access_token"], client_assertion_type=JWT_BEARER)
    assert emulator.decode(body(emulator(exchange))["access_token"])["appid"] == CLIENT
    # One log for both.
    assert [r.url.split("?")[0].rsplit("/", 2)[-2] for r in emulator.requests] == ["appservice", "v2.0"]


def test_registration_api_and_shared_parts(emulator: IdentityEmulator) -> None:
    identity = emulator.add_user_assigned("c-1", "o-1", "/subscriptions/s/mi-1")
    assert emulator.managed_identity.user_assigned == [identity]
    url = f"http://127.0.0.1:1{PATHS['app_service']}?api-version=2019-08-01&resource=https://x&client_id=c-1"
    headers = (("X-IDENTITY-HEADER", emulator.managed_identity.identity_header),)
    reply = body(emulator(HttpRequest("GET", url, headers)))
    assert emulator.decode(reply["access_token"])["oid"] == "o-1"
    assert emulator.managed_identity.requests_to("app_service") == emulator.requests
    # Wrong method: the source's 405, and no fault is spent on it.
    emulator.fail_next(500)
    assert emulator(HttpRequest("POST", url, headers)).status == 405
    assert emulator(HttpRequest("GET", url, headers)).status == 500
    assert IdentityEmulator(clock=emulator.clock, system_assigned=False).managed_identity.system is None


# -- faults, in-process --


def test_in_process_faults_report_latency_and_act_out_drops(emulator: IdentityEmulator) -> None:
    emulator.fail_next(Fault(429, {"error": "slow_down"}, (("Retry-After", "7"),), delay=2.5))
    first = emulator(token_request())
    assert (first.status, first.header("retry-after"), body(first)) == (429, "7", {"error": "slow_down"})
    assert emulator.delays == [2.5]  # reported, not slept
    emulator.fail_next(Fault(200, b'{"access_token": "abc", "expires_in": 3600}', drop=10))
    with pytest.raises(TransportError, match="closed after 10 body bytes") as dropped:
        emulator(token_request())
    assert dropped.value.kind == "closed"
    emulator.fail_next(Fault(delay=31.0))
    with pytest.raises(TransportError) as slow:
        emulator(token_request())
    assert slow.value.kind == "timeout"  # longer than the request's 30 s
    emulator.fail_next(Fault(200, "x" * 11))
    with pytest.raises(TransportError) as big:
        emulator(token_request()._replace(max_response_bytes=10))
    assert big.value.kind == "too_large"
    emulator.fail_next(Fault(200, "{not json", source="app_service"))
    assert emulator(token_request()).status == 200  # the fault waits for its source
    assert emulator(mi_request("app_service", emulator)).body == b"{not json"
    assert emulator.delays == [2.5, 31.0]
    assert emulator(token_request()).status == 200


def test_a_fault_with_the_credential_in_process(emulator: IdentityEmulator) -> None:
    for status in (503, 429):  # a status sequence, then the real reply
        emulator.fail_next(Fault(status, headers=(("Retry-After", "1"),)))
    core = ClientSecretCredential(TENANT, CLIENT, SECRET, authority=AUTHORITY, env={})
    call = TokenCall((VAULT,), None, None, False)
    slept: list[float] = []

    def send(effect: Any) -> Any:
        if isinstance(effect, HttpRequest):
            return emulator(effect)
        slept.append(effect.seconds)
        return emulator.clock()

    info = run(core.fetch_flow(call, core.cache_key(call), emulator.clock()), send)
    assert emulator.decode(info.token)["appid"] == CLIENT
    assert slept == [1.0, 1.0]
    assert emulator.token_requests == 3


def test_a_standalone_managed_identity_emulator_still_serves(signing_key: RSAPrivateKey) -> None:
    mi = ManagedIdentityEmulator(clock=lambda: 1_800_000_000.0, signing_key=signing_key, tenant_id="t-9")
    url = f"http://127.0.0.1:1{IMDS_BASE}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=r"
    reply = body(mi(HttpRequest("GET", url, (("Metadata", "true"),))))
    assert mi.decode(reply["access_token"])["iss"] == "https://sts.windows.net/t-9/"
    assert mi(HttpRequest("GET", "http://127.0.0.1:1/nowhere")).status == 404


# -- faults on every adapter path --


@pytest.fixture
def plain(emulator: IdentityEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    """The same emulator over plain http, where the managed-identity endpoints live."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with LoopbackServer(emulator, tls=False) as server:
        yield server


def app_service(emulator: IdentityEmulator, server: LoopbackServer) -> ManagedIdentityCredential:
    env = {
        "IDENTITY_ENDPOINT": server.url + PATHS["app_service"],
        "IDENTITY_HEADER": emulator.managed_identity.identity_header,
    }
    return ManagedIdentityCredential(env=env, platform="linux")


def entra(server: LoopbackServer) -> ClientSecretCredential:
    return ClientSecretCredential(TENANT, CLIENT, SECRET, authority=server.url, env={})


def test_429_with_retry_after_then_200_on_every_path(
    path: Path, server: LoopbackServer, plain: LoopbackServer, emulator: IdentityEmulator, clock: FakeClock
) -> None:
    emulator.fail_next(Fault(429, {"error": "throttled"}, (("Retry-After", "3"),)))
    cred = path.credential(entra(server), clock)
    assert emulator.decode(path.get_token(cred, VAULT).token)["appid"] == CLIENT
    assert cred.slept == [3.0]
    path.close(cred)
    emulator.fail_next(Fault(429, {"error": "throttled"}, (("Retry-After", "4"),), source="app_service"))
    cred = path.credential(app_service(emulator, plain), clock)
    assert emulator.decode(path.get_token(cred, VAULT).token)["iss"] == MI_TENANT
    assert cred.slept == [4.0]
    path.close(cred)
    assert len(emulator.requests) == 4


def test_a_connection_dropped_mid_body_on_every_path(
    path: Path, server: LoopbackServer, plain: LoopbackServer, emulator: IdentityEmulator, clock: FakeClock
) -> None:
    emulator.fail_next(Fault(200, {"access_token": "x" * 64, "expires_in": 3600}, drop=20))
    cred = path.credential(entra(server), clock)
    with pytest.raises(CredentialUnavailableError, match=r"could not be reached \(closed\)") as caught:
        path.get_token(cred, VAULT)
    assert isinstance(caught.value.__cause__, TransportError)
    assert caught.value.__cause__.kind == "closed"
    path.close(cred)
    # Managed identity's policy S retries a closed connection (§0.5): the second attempt gets the token.
    emulator.fail_next(
        Fault(200, {"access_token": "x" * 64, "expires_on": "1"}, drop=20, source="app_service")
    )
    cred = path.credential(app_service(emulator, plain), clock)
    assert emulator.decode(path.get_token(cred, VAULT).token)["iss"] == MI_TENANT
    assert len(emulator.managed_identity.requests_to("app_service")) == 2
    path.close(cred)
