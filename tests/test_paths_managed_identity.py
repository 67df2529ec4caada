"""ManagedIdentityCredential on every adapter path against the managed-identity emulator on loopback
(PROTOCOL.md §4.2, §4.6, §4.7, §7.3, §10 items 6, 14, 15).

Each source, with each identity kind it supports, gets a token through every path, and the request
the emulator received is §4.2's exactly. Plain http on 127.0.0.1 for the sources whose real endpoints
are http; Service Fabric over real TLS with a self-signed certificate no CA vouches for, pinned by
thumbprint. With HTTP(S)_PROXY pointing at a trap, no managed-identity request goes through it.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import pytest

from azid_core.errors import AuthError, ProtocolError
from azid_core.managed_identity.credential import ManagedIdentityCredential
from azid_core.testing.managed_identity import IMDS_BASE, PATHS, ManagedIdentityEmulator
from tests import certs
from tests.loopback import LoopbackServer, TrapProxy

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path as FilePath

    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from azid_core.effects import HttpRequest
    from tests.conftest import FakeClock
    from tests.paths import Path

SCOPE = "https://vault.azure.net/.default"
RESOURCE = "https://vault.azure.net"
USER = (
    "5a1e0c1d-0000-4000-8000-00000000c1d1",
    "0b1ec7d0-0000-4000-8000-000000000b1d",
    "/subscriptions/s/mi-1",
)
ARC_KEY = "azid-path-test-arc-key-0123456789abcdef"
LEAF = certs.leaf()
THUMBPRINT = hashlib.sha1(LEAF.der, usedforsecurity=False).hexdigest()
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
API_VERSIONS = {
    "imds": "2018-02-01",
    "app_service": "2019-08-01",
    "arc": "2020-06-01",
    "azure_ml": "2017-09-01",
    "service_fabric": "2019-07-01-preview",
}
# §4.2: each source's selector query names and the source's own headers.
SELECTOR_NAMES = {
    "imds": {"client_id": "client_id", "object_id": "object_id", "resource_id": "msi_res_id"},
    "app_service": {"client_id": "client_id", "object_id": "object_id", "resource_id": "mi_res_id"},
    "arc": {"client_id": "client_id", "object_id": "object_id", "resource_id": "msi_res_id"},
    "azure_ml": {"client_id": "clientid", "object_id": "object_id", "resource_id": "msi_res_id"},
}
KINDS = ("system", "client_id", "object_id", "resource_id")
CASES = [
    (source, kind)
    for source in ("imds", "app_service", "arc", "azure_ml", "cloud_shell", "service_fabric")
    for kind in (KINDS if source in SELECTOR_NAMES else ("system",))
]


class Servers(NamedTuple):
    http: LoopbackServer  # the emulator over plain http (IMDS, App Service, Arc, Azure ML, Cloud Shell)
    pinned: LoopbackServer  # the emulator over TLS with a self-signed certificate (Service Fabric)


@pytest.fixture
def mi(clock: FakeClock, tmp_path: FilePath, signing_key: RSAPrivateKey) -> ManagedIdentityEmulator:
    emulator = ManagedIdentityEmulator(clock=clock, signing_key=signing_key)
    emulator.add_user_assigned(*USER)
    # The Arc agent writes a key file and names it in its challenge; here the test writes it.
    key_file = tmp_path / "azid-path-test.key"
    key_file.write_text(ARC_KEY)
    emulator.arc_key_path, emulator.arc_key = str(key_file), ARC_KEY
    return emulator


@pytest.fixture
def servers(mi: ManagedIdentityEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Servers]:
    for name in (*PROXY_VARIABLES, "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with (
        LoopbackServer(mi, tls=False) as http,
        LoopbackServer(mi, certificate=(LEAF.cert_pem, LEAF.key_pem())) as pinned,
    ):
        yield Servers(http, pinned)


def core_for(
    source: str,
    servers: Servers,
    mi: ManagedIdentityEmulator,
    tmp_path: FilePath,
    kind: str = "system",
    *,
    thumbprint: str = THUMBPRINT,
) -> ManagedIdentityCredential:
    """The credential for `source`, its environment pointing at the loopback servers."""
    url = servers.http.url
    env = {
        "imds": {},
        "app_service": {
            "IDENTITY_ENDPOINT": url + PATHS["app_service"],
            "IDENTITY_HEADER": mi.identity_header,
        },
        "arc": {"IDENTITY_ENDPOINT": url + PATHS["arc"], "IMDS_ENDPOINT": url + IMDS_BASE},
        "azure_ml": {"MSI_ENDPOINT": url + PATHS["azure_ml"], "MSI_SECRET": mi.msi_secret},
        "cloud_shell": {"MSI_ENDPOINT": url + PATHS["cloud_shell"]},
        "service_fabric": {
            "IDENTITY_ENDPOINT": servers.pinned.url + PATHS["service_fabric"],
            "IDENTITY_HEADER": mi.identity_header,
            "IDENTITY_SERVER_THUMBPRINT": thumbprint,
        },
    }[source]
    options: dict[str, Any] = {}
    if kind != "system":
        options[kind] = dict(zip(("client_id", "object_id", "resource_id"), USER, strict=True))[kind]
    core = ManagedIdentityCredential(
        env=env,
        imds_endpoint=url + IMDS_BASE if source == "imds" else None,
        arc_key_directory=str(tmp_path),
        platform="linux",
        **options,
    )
    assert core.source == source
    return core


def expected_query(source: str, kind: str) -> list[tuple[str, str]]:
    if source == "cloud_shell":
        return []
    query = [("api-version", API_VERSIONS[source]), ("resource", RESOURCE)]
    if kind != "system":
        value = dict(zip(("client_id", "object_id", "resource_id"), USER, strict=True))[kind]
        query.append((SELECTOR_NAMES[source][kind], value))
    return query


def expected_headers(source: str, mi: ManagedIdentityEmulator, *, second: bool = False) -> dict[str, str]:
    own = {
        "imds": {"metadata": "true"},
        "app_service": {"x-identity-header": mi.identity_header, "metadata": "true"},
        "arc": {"metadata": "true", **({"authorization": f"Basic {ARC_KEY}"} if second else {})},
        "azure_ml": {"secret": mi.msi_secret},
        "cloud_shell": {
            "metadata": "true",
            "content-type": "application/x-www-form-urlencoded; charset=utf-8",
        },
        "service_fabric": {"secret": mi.identity_header},
    }[source]
    return {"accept": "application/json", **own}


def check_request(
    request: HttpRequest, source: str, kind: str, mi: ManagedIdentityEmulator, *, second: bool
) -> None:
    """The request is §4.2's: method, path, query, headers, body; nothing else added."""
    parts = urlsplit(request.url)
    assert request.method == ("POST" if source == "cloud_shell" else "GET")
    assert parts.path == PATHS[source]
    assert parse_qsl(parts.query) == expected_query(source, kind)
    headers = {name.lower(): value for name, value in request.headers}
    assert headers["user-agent"].startswith("azid/")
    assert uuid.UUID(headers["x-ms-client-request-id"]).version == 4
    ours = expected_headers(source, mi, second=second)
    assert {name: headers.get(name) for name in ours} == ours
    added = set(headers) - set(ours) - {"user-agent", "x-ms-client-request-id"}
    assert added <= {"host", "content-length", "connection"}
    assert request.body == (b"resource=https%3A%2F%2Fvault.azure.net" if source == "cloud_shell" else b"")


@pytest.mark.parametrize(("source", "kind"), CASES, ids=[f"{s}-{k}" for s, k in CASES])
def test_each_source_and_identity_kind_gets_a_token(
    path: Path,
    servers: Servers,
    mi: ManagedIdentityEmulator,
    clock: FakeClock,
    tmp_path: FilePath,
    source: str,
    kind: str,
) -> None:
    cred = path.credential(core_for(source, servers, mi, tmp_path, kind), clock)
    token = path.get_token(cred, SCOPE)
    claims = mi.decode(token.token)
    assert (claims["aud"], claims["azid_source"]) == (RESOURCE, source)
    assert claims["oid"] == (USER[1] if kind != "system" else mi.system.object_id)  # type: ignore[union-attr]
    assert token.expires_on == int(clock.now) + 86400
    info = path.get_token_info(cred, SCOPE)
    assert info.token == token.token  # served from the cache
    assert info.refresh_on == int(clock.now) + 43200  # half-life for a 24 h token (§7.2)
    requests = mi.requests_to(source)
    if source == "arc":
        first, second = requests  # the challenge, then the answer with the key (§4.6)
        check_request(first, source, kind, mi, second=False)
        check_request(second, source, kind, mi, second=True)
        # One logical request: the same request id across the two (§0.4).
        ids = {{n.lower(): v for n, v in r.headers}["x-ms-client-request-id"] for r in requests}
        assert len(ids) == 1
    else:
        (request,) = requests
        check_request(request, source, kind, mi, second=False)
    assert mi.issued == 1
    assert cred.slept == []
    path.close(cred)


@pytest.mark.parametrize(
    "source", ["imds", "app_service", "arc", "azure_ml", "cloud_shell", "service_fabric"]
)
def test_two_hundred_callers_make_one_request(
    path: Path,
    servers: Servers,
    mi: ManagedIdentityEmulator,
    clock: FakeClock,
    tmp_path: FilePath,
    source: str,
) -> None:
    cred = path.credential(core_for(source, servers, mi, tmp_path), clock)
    results = path.many(cred, [(SCOPE,)] * 200)
    assert all(not isinstance(result, BaseException) for result in results), results[:3]
    assert len({result.token for result in results}) == 1  # type: ignore[union-attr]
    assert mi.issued == 1
    assert len(mi.requests) == (2 if source == "arc" else 1)
    path.close(cred)


def test_service_fabric_with_the_wrong_thumbprint_sends_nothing(
    path: Path, servers: Servers, mi: ManagedIdentityEmulator, clock: FakeClock, tmp_path: FilePath
) -> None:
    wrong = bytes(b ^ 0x5A for b in bytes.fromhex(THUMBPRINT)).hex().upper()
    cred = path.credential(core_for("service_fabric", servers, mi, tmp_path, thumbprint=wrong), clock)
    with pytest.raises(AuthError, match="certificate does not match IDENTITY_SERVER_THUMBPRINT") as caught:
        path.get_token(cred, SCOPE)
    assert mi.identity_header not in str(caught.value)
    # The handshake happened, but not one byte of HTTP followed it: the Secret never left (§4.7).
    assert servers.pinned.requests_received == 0
    assert servers.pinned.bytes_received == 0
    assert mi.requests == []
    assert cred.slept == []  # not retried
    path.close(cred)


def test_service_fabric_thumbprint_with_colons_and_upper_case(
    path: Path, servers: Servers, mi: ManagedIdentityEmulator, clock: FakeClock, tmp_path: FilePath
) -> None:
    spaced = ":".join(THUMBPRINT[i : i + 2] for i in range(0, 40, 2)).upper()
    cred = path.credential(core_for("service_fabric", servers, mi, tmp_path, thumbprint=spaced), clock)
    assert mi.decode(path.get_token(cred, SCOPE).token)["azid_source"] == "service_fabric"
    assert servers.pinned.requests_received == 1
    path.close(cred)


def test_an_arc_key_behind_a_symlink_is_not_read(
    path: Path, servers: Servers, mi: ManagedIdentityEmulator, clock: FakeClock, tmp_path: FilePath
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "real.key").write_text(ARC_KEY)
    link = tmp_path / "linked.key"
    link.symlink_to(target / "real.key")
    mi.arc_key_path = str(link)
    cred = path.credential(core_for("arc", servers, mi, tmp_path), clock)
    with pytest.raises(AuthError, match="cannot be read") as caught:
        path.get_token(cred, SCOPE)
    assert caught.value.error == "arc_challenge_rejected"
    assert ARC_KEY not in str(caught.value)
    assert len(mi.requests) == 1  # the challenge only: no request carried the key
    path.close(cred)


def test_an_arc_challenge_outside_the_key_directory_reads_nothing(
    path: Path, servers: Servers, mi: ManagedIdentityEmulator, clock: FakeClock, tmp_path: FilePath
) -> None:
    elsewhere = tmp_path / "sub"
    elsewhere.mkdir()
    (elsewhere / "other.key").write_text(ARC_KEY)
    mi.arc_key_path = str(elsewhere / "other.key")
    cred = path.credential(core_for("arc", servers, mi, tmp_path), clock)
    with pytest.raises(AuthError, match=f"not directly in {tmp_path}") as caught:
        path.get_token(cred, SCOPE)
    assert ARC_KEY not in str(caught.value)
    assert len(mi.requests) == 1
    path.close(cred)


@pytest.mark.parametrize(
    "source", ["imds", "app_service", "arc", "azure_ml", "cloud_shell", "service_fabric"]
)
def test_managed_identity_requests_never_go_through_a_proxy(
    path: Path,
    servers: Servers,
    mi: ManagedIdentityEmulator,
    clock: FakeClock,
    tmp_path: FilePath,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    with TrapProxy() as trap:
        for name in PROXY_VARIABLES:
            monkeypatch.setenv(name, trap.url)
        cred = path.credential(core_for(source, servers, mi, tmp_path), clock)
        token = path.get_token(cred, SCOPE)
        path.close(cred)
    assert mi.decode(token.token)["azid_source"] == source
    assert trap.connections == 0
    assert trap.first_lines == []


@pytest.mark.parametrize(
    ("source", "form"),
    [
        ("app_service", "date"),
        ("azure_ml", "int"),
        ("azure_ml", "string"),
        ("azure_ml", "date"),
        ("service_fabric", "string"),
        ("imds", "int"),
    ],
)
def test_each_expiry_form_a_source_sends(
    path: Path,
    servers: Servers,
    mi: ManagedIdentityEmulator,
    clock: FakeClock,
    tmp_path: FilePath,
    source: str,
    form: str,
) -> None:
    mi.expiry_form[source] = form
    cred = path.credential(core_for(source, servers, mi, tmp_path), clock)
    assert path.get_token(cred, SCOPE).expires_on == int(clock.now) + 86400
    path.close(cred)


def test_faults_retry_after_and_a_malformed_body(
    path: Path, servers: Servers, mi: ManagedIdentityEmulator, clock: FakeClock, tmp_path: FilePath
) -> None:
    mi.fail_next(503, {"error": "busy"}, (("Retry-After", "2"),), source="app_service")
    mi.fail_next(500, {"statusCode": 500, "message": "later"}, source="app_service")
    cred = path.credential(core_for("app_service", servers, mi, tmp_path), clock)
    assert mi.decode(path.get_token(cred, SCOPE).token)["azid_source"] == "app_service"
    assert cred.slept == [2.0, 1.6]  # the hint, then policy S's second delay (§0.5)
    assert len(mi.requests) == 3
    path.close(cred)
    mi.fail_next(200, b"<html>not json</html>", source="azure_ml")
    cred = path.credential(core_for("azure_ml", servers, mi, tmp_path), clock)
    with pytest.raises(ProtocolError, match="not a JSON object"):
        path.get_token(cred, SCOPE)
    path.close(cred)
