"""The managed-identity emulator answers like the real services (PROTOCOL.md §4.2, §4.3, §4.6):
required headers and query, identities, expiry forms, the Arc challenge, faults, the record."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest

from azid_core.drive import run
from azid_core.effects import Effect, FileContent, HttpRequest, HttpResponse, ReadFile, Reply
from azid_core.managed_identity.arc import arc_flow, arc_source
from azid_core.managed_identity.common import Selector, SourceCall
from azid_core.managed_identity.service_fabric import service_fabric_flow, service_fabric_source
from azid_core.testing.managed_identity import API_VERSIONS, PATHS, ManagedIdentityEmulator
from azid_core.tokens import parse_expiry

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

NOW = 1_800_000_000  # 2027-01-15T08:00:00Z
BASE = "http://127.0.0.1:8080"
VAULT = "https://vault.azure.net"
UA = ("c-1", "o-1", "/subscriptions/s/mi-1")  # client id, object id, resource id
SECRET_HEADERS = {
    "imds": ("Metadata", "true"),
    "app_service": ("X-IDENTITY-HEADER", "azid-emulator-identity-header"),
    "arc": ("Metadata", "true"),
    "azure_ml": ("secret", "azid-emulator-msi-secret"),
    "cloud_shell": ("Metadata", "true"),
    "service_fabric": ("Secret", "azid-emulator-identity-header"),
}
SELECTOR_NAMES = {
    "imds": ("client_id", "object_id", "msi_res_id"),
    "app_service": ("client_id", "object_id", "mi_res_id"),
    "arc": ("client_id", "object_id", "msi_res_id"),
    "azure_ml": ("clientid", "object_id", "msi_res_id"),
}


@pytest.fixture
def emulator(signing_key: RSAPrivateKey) -> ManagedIdentityEmulator:
    emulator = ManagedIdentityEmulator(clock=lambda: NOW, signing_key=signing_key)
    emulator.add_user_assigned(*UA)
    return emulator


def ask(
    emulator: ManagedIdentityEmulator,
    source: str,
    *extra: tuple[str, str],
    headers: tuple[tuple[str, str], ...] | None = None,
    api_version: str | None = None,
) -> HttpResponse:
    """A well-formed request to `source` (plus `extra` query fields), answered."""
    params = [("resource", VAULT), *extra]
    if source in API_VERSIONS:
        params.insert(0, ("api-version", api_version or API_VERSIONS[source]))
    sent = headers if headers is not None else (SECRET_HEADERS[source],)
    if source == "arc" and headers is None:
        sent = (*sent, ("Authorization", "Basic azid-emulator-arc-key"))
    if source == "cloud_shell":
        return emulator(HttpRequest("POST", BASE + PATHS[source], sent, urlencode(params).encode()))
    return emulator(HttpRequest("GET", f"{BASE}{PATHS[source]}?{urlencode(params)}", sent))


def body(response: HttpResponse) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(response.body)
    return value


@pytest.mark.parametrize("source", list(PATHS))
def test_every_source_issues_a_system_assigned_token(emulator: ManagedIdentityEmulator, source: str) -> None:
    response = ask(emulator, source)
    assert response.status == 200
    reply = body(response)
    claims = emulator.decode(reply["access_token"])
    assert claims["aud"] == VAULT
    assert claims["oid"] == emulator.system.object_id  # type: ignore[union-attr]
    assert claims["azid_source"] == source
    assert "xms_mirid" not in claims
    assert (
        parse_expiry(reply["expires_on"], field="expires_on", source=source, owner="t", now=NOW)
        == NOW + 86400
    )
    assert emulator.issued == 1
    assert emulator.requests_to(source) == emulator.requests


@pytest.mark.parametrize(
    ("source", "name", "value"),
    [
        (source, name, value)
        for source, names in SELECTOR_NAMES.items()
        for name, value in zip(names, UA, strict=True)
    ],
)
def test_user_assigned_by_each_selector_and_echoed(
    emulator: ManagedIdentityEmulator, source: str, name: str, value: str
) -> None:
    reply = body(ask(emulator, source, (name, value.upper())))
    claims = emulator.decode(reply["access_token"])
    assert (claims["appid"], claims["oid"], claims["xms_mirid"]) == UA
    assert reply[name] == value.upper()


@pytest.mark.parametrize("source", list(SELECTOR_NAMES))
def test_an_unknown_user_assigned_identity(emulator: ManagedIdentityEmulator, source: str) -> None:
    response = ask(emulator, source, (SELECTOR_NAMES[source][0], "nobody"))
    if source == "arc":
        # The agent serves the machine's identity and does not echo the selector (§4.3 row 2).
        reply = body(response)
        assert response.status == 200
        assert "client_id" in reply
        assert reply["client_id"] == emulator.system.client_id  # type: ignore[union-attr]
        return
    assert response.status == 400
    text = response.body.decode()
    assert "Identity not found" in text or "Unable to load the proper Managed Identity" in text


def test_two_selectors_are_a_bad_request(emulator: ManagedIdentityEmulator) -> None:
    response = ask(emulator, "imds", ("client_id", "c-1"), ("object_id", "o-1"))
    assert response.status == 400
    assert "only one of" in body(response)["error_description"]


def test_no_system_identity(emulator: ManagedIdentityEmulator) -> None:
    emulator.system = None
    assert ask(emulator, "imds").status == 400
    assert ask(emulator, "arc", ("client_id", "nobody")).status == 400
    response = ask(emulator, "service_fabric")
    assert (response.status, body(response)["error"]["code"]) == (404, "ManagedIdentityNotFound")
    assert body(ask(emulator, "app_service"))["statusCode"] == 400
    assert ManagedIdentityEmulator(clock=lambda: NOW, system_assigned=False).system is None


def test_imds_requires_metadata(emulator: ManagedIdentityEmulator) -> None:
    response = ask(emulator, "imds", headers=())
    assert response.status == 400
    assert body(response) == {
        "error": "invalid_request",
        "error_description": "Required metadata header not specified",
    }
    assert ask(emulator, "imds", headers=(("Metadata", "false"),)).status == 400
    assert ask(emulator, "cloud_shell", headers=()).status == 400
    assert ask(emulator, "arc", headers=(("Authorization", "Basic azid-emulator-arc-key"),)).status == 400


@pytest.mark.parametrize("source", ["app_service", "azure_ml", "service_fabric"])
def test_a_missing_or_wrong_secret_header_is_401(emulator: ManagedIdentityEmulator, source: str) -> None:
    name = SECRET_HEADERS[source][0]
    for headers in ((), ((name, "wrong"),)):
        assert ask(emulator, source, headers=headers).status == 401
    assert emulator.issued == 0
    if source == "service_fabric":
        assert body(ask(emulator, source, headers=()))["error"]["code"] == "SecretHeaderNotFound"


@pytest.mark.parametrize("source", list(API_VERSIONS))
def test_api_version_unknown_parameters_and_resource(emulator: ManagedIdentityEmulator, source: str) -> None:
    assert ask(emulator, source, api_version="2000-01-01").status == 400
    assert ask(emulator, source, ("resource_id", "x")).status == 400
    no_resource = HttpRequest(
        "GET",
        f"{BASE}{PATHS[source]}?api-version={API_VERSIONS[source]}",
        (SECRET_HEADERS[source], ("Authorization", "Basic azid-emulator-arc-key")),
    )
    assert emulator(no_resource).status == 400
    assert emulator.issued == 0


def test_error_bodies_have_each_service_s_shape(emulator: ManagedIdentityEmulator) -> None:
    assert body(ask(emulator, "service_fabric", api_version="x"))["error"]["code"] == "BadRequest"
    assert body(ask(emulator, "app_service", api_version="x"))["statusCode"] == 400
    assert body(ask(emulator, "azure_ml", api_version="x"))["error"] == "invalid_request"


def test_service_fabric_takes_token_sha256_to_refresh(emulator: ManagedIdentityEmulator) -> None:
    assert ask(emulator, "service_fabric", ("token_sha256_to_refresh", "ab" * 32)).status == 200


def test_the_arc_challenge(emulator: ManagedIdentityEmulator) -> None:
    emulator.arc_key_path, emulator.arc_key = "/keys/k.key", "k3y"
    response = ask(emulator, "arc", headers=(("Metadata", "true"),))
    assert response.status == 401
    assert response.header("WWW-Authenticate") == "Basic realm=/keys/k.key"
    wrong = ask(emulator, "arc", headers=(("Metadata", "true"), ("Authorization", "Basic nope")))
    assert wrong.status == 401
    assert wrong.header("WWW-Authenticate") is None
    right = ask(emulator, "arc", headers=(("Metadata", "true"), ("Authorization", "Basic k3y")))
    assert right.status == 200


def test_cloud_shell_is_a_form_post(emulator: ManagedIdentityEmulator) -> None:
    assert emulator(HttpRequest("GET", BASE + PATHS["cloud_shell"], (("Metadata", "true"),))).status == 405
    with_query = HttpRequest("POST", f"{BASE}{PATHS['cloud_shell']}?resource=x", (("Metadata", "true"),), b"")
    assert with_query.url.endswith("?resource=x")
    assert emulator(with_query).status == 400
    assert ask(emulator, "cloud_shell", ("client_id", "c-1")).status == 400
    assert emulator(HttpRequest("POST", BASE + PATHS["imds"])).status == 405
    assert emulator(HttpRequest("GET", BASE + "/elsewhere")).status == 404


@pytest.mark.parametrize(
    ("source", "form", "expected"),
    [
        ("imds", "string", str(NOW + 86400)),
        ("app_service", "date", "01/16/2027 08:00:00 +00:00"),
        ("azure_ml", "int", NOW + 86400),
        ("azure_ml", "string", str(NOW + 86400)),
        ("azure_ml", "date", "1/16/2027 8:00:00 AM +00:00"),
        ("service_fabric", "int", NOW + 86400),
    ],
)
def test_expiry_forms(emulator: ManagedIdentityEmulator, source: str, form: str, expected: object) -> None:
    emulator.expiry_form[source] = form
    reply = body(ask(emulator, source))
    assert reply["expires_on"] == expected
    assert (
        parse_expiry(reply["expires_on"], field="expires_on", source=source, owner="t", now=NOW)
        == NOW + 86400
    )


@pytest.mark.parametrize(("hours", "expected"), [(4, "12:00:00 PM"), (16, "12:00:00 AM"), (9, "5:00:00 PM")])
def test_azure_ml_twelve_hour_clock(hours: int, expected: str, signing_key: RSAPrivateKey) -> None:
    emulator = ManagedIdentityEmulator(
        clock=lambda: NOW, token_lifetime=hours * 3600, signing_key=signing_key
    )
    emulator.expiry_form["azure_ml"] = "date"
    stamp = body(ask(emulator, "azure_ml"))["expires_on"]
    assert expected in stamp
    assert parse_expiry(stamp, field="f", source="s", owner="t", now=NOW) == NOW + hours * 3600


def test_faults_are_queued_per_source(emulator: ManagedIdentityEmulator) -> None:
    emulator.fail_next(503, {"error": "busy"}, (("Retry-After", "2"),), source="arc")
    emulator.fail_next(200, b"not json")
    emulator.fail_next(500, "text")
    first = ask(emulator, "imds")
    assert (first.status, first.body) == (200, b"not json")
    arc = ask(emulator, "arc", headers=())  # a fault is answered before any check
    assert (arc.status, arc.header("Retry-After"), body(arc)) == (503, "2", {"error": "busy"})
    assert ask(emulator, "app_service").body == b"text"
    assert ask(emulator, "imds").status == 200
    assert len(emulator.requests) == 4


# -- the core flows against the emulator, in process --


def call(selector: Selector | None = None) -> SourceCall:
    return SourceCall(VAULT, selector, None, None, False, "azid/test", "rid-1", 30.0)


def test_arc_flow_against_the_emulator(emulator: ManagedIdentityEmulator) -> None:
    emulator.arc_key_path = "/var/opt/azcmagent/tokens/t.key"
    reads: list[ReadFile] = []

    def io(effect: Effect) -> Reply:
        if isinstance(effect, ReadFile):
            reads.append(effect)
            return FileContent(emulator.arc_key.encode(), len(emulator.arc_key), 1)
        assert isinstance(effect, HttpRequest)
        return emulator(effect)

    source = arc_source(BASE + PATHS["arc"], key_directory=None, platform="linux", env={})
    token = run(arc_flow(source, call(), now=NOW), io)
    assert emulator.decode(token.token)["azid_source"] == "arc"
    assert reads == [ReadFile("/var/opt/azcmagent/tokens/t.key", 4096, None, True)]
    token = run(arc_flow(source, call(Selector("object_id", "o-1")), now=NOW), io)
    assert emulator.decode(token.token)["oid"] == "o-1"


def test_service_fabric_flow_against_the_emulator(emulator: ManagedIdentityEmulator) -> None:
    source = service_fabric_source(
        BASE.replace("http", "https") + PATHS["service_fabric"], emulator.identity_header, "ab" * 20
    )

    def io(effect: Effect) -> Reply:
        assert isinstance(effect, HttpRequest)
        assert effect.pin_sha1 == bytes.fromhex("ab" * 20)
        return emulator(effect._replace(url=effect.url.replace("https", "http", 1)))

    token = run(service_fabric_flow(source, call(), now=NOW), io)
    assert token.expires_on == NOW + 86400
