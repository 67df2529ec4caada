"""ADFS: the token endpoint is discovered once per credential and must stay on the authority's
origin (PROTOCOL.md §1.2, §1.3 rule 2)."""

from __future__ import annotations

import json
import pickle
from typing import TYPE_CHECKING, Any

import pytest

from azid_core.acquire import TokenCall
from azid_core.drive import run
from azid_core.effects import HttpRequest, HttpResponse, Sleep
from azid_core.entra.confidential import ClientSecretCredential
from azid_core.errors import AuthError, CredentialUnavailableError, ProtocolError, TransportError
from azid_core.testing import EntraEmulator, ScriptedIO

if TYPE_CHECKING:
    from azid_core.effects import Reply
    from azid_core.tokens import AccessTokenInfo

NOW = 1_700_000_000.0
AUTHORITY = "https://adfs.contoso.local"
SECRET = "adfs-Secret~value.1"
SCOPE = "https://vault.azure.net/.default"
CONFIGURATION = f"{AUTHORITY}/adfs/.well-known/openid-configuration"


def credential(**kwargs: Any) -> ClientSecretCredential:
    return ClientSecretCredential("adfs", "app-adfs", SECRET, authority=AUTHORITY, env={}, **kwargs)


def fetch(cred: ClientSecretCredential, handler: Any, tenant_id: str | None = None) -> AccessTokenInfo:
    call = TokenCall((SCOPE,), None, tenant_id, False)
    return run(cred.fetch_flow(call, cred.cache_key(call), NOW), handler)


def document(body: object, status: int = 200) -> HttpResponse:
    return HttpResponse(status, (("Content-Type", "application/json"),), json.dumps(body).encode())


@pytest.fixture
def emulator() -> EntraEmulator:
    emulator = EntraEmulator(clock=lambda: NOW)
    emulator.add_app("adfs", "app-adfs", SECRET)
    return emulator


def test_discovery_once_then_the_discovered_endpoint(emulator: EntraEmulator) -> None:
    cred = credential()
    info = fetch(cred, emulator)
    assert emulator.decode(info.token)["aud"] == "https://vault.azure.net"
    fetch(cred, emulator)
    sent = [(r.method, r.url) for r in emulator.requests]
    assert sent == [
        ("GET", CONFIGURATION),
        ("POST", f"{AUTHORITY}/adfs/oauth2/token"),
        ("POST", f"{AUTHORITY}/adfs/oauth2/token"),
    ]
    names = [name for name, _ in emulator.requests[0].headers]
    assert names == ["User-Agent", "x-ms-client-request-id", "Accept"]
    assert emulator.requests[0].body == b""


def test_a_requested_tenant_does_not_leave_adfs(emulator: EntraEmulator) -> None:
    cred = credential(additionally_allowed_tenants=["*"])
    call = TokenCall((SCOPE,), None, "other-tenant", False)
    assert cred.cache_key(call)[1] == "adfs"
    fetch(cred, emulator, tenant_id="other-tenant")
    assert emulator.requests[-1].url == f"{AUTHORITY}/adfs/oauth2/token"


def test_the_discovered_endpoint_is_not_pickled(emulator: EntraEmulator) -> None:
    cred = credential()
    fetch(cred, emulator)
    clone = pickle.loads(pickle.dumps(cred))
    fetch(clone, emulator)
    assert [r.method for r in emulator.requests] == ["GET", "POST", "GET", "POST"]


def test_discovery_retries_like_entra(emulator: EntraEmulator) -> None:
    configuration = emulator(HttpRequest("GET", CONFIGURATION))
    token = document({"access_token": "tok", "expires_in": 3600})
    io = ScriptedIO(HttpResponse(503), None, configuration, token)
    assert fetch(credential(), io).token == "tok"
    assert [type(e) for e in io.seen] == [HttpRequest, Sleep, HttpRequest, HttpRequest]
    first, _, again, post = (e for e in io.seen if isinstance(e, HttpRequest) or e == Sleep(0.0))
    assert isinstance(first, HttpRequest)
    assert isinstance(again, HttpRequest)
    assert isinstance(post, HttpRequest)
    assert first.url == again.url == CONFIGURATION
    assert dict(first.headers)["x-ms-client-request-id"] == dict(again.headers)["x-ms-client-request-id"]
    assert post.url == f"{AUTHORITY}/adfs/oauth2/token"


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (document({"error": "invalid_request"}, 400), AuthError, "HTTP 400, invalid_request"),
        (HttpResponse(200, (), b"<html>"), ProtocolError, "ADFS reply: body: not a JSON object: <html>"),
        (document(["a"]), ProtocolError, "ADFS reply: body: not a JSON object"),
        (document({"issuer": "x"}), ProtocolError, "ADFS reply: token_endpoint: missing"),
        (document({"token_endpoint": 7}), ProtocolError, "ADFS reply: token_endpoint: missing"),
        (
            document({"token_endpoint": "https://evil.example/adfs/oauth2/token"}),
            ProtocolError,
            "'https://evil.example/adfs/oauth2/token' is not on the authority's origin https://adfs.contoso.local",
        ),
        (
            document({"token_endpoint": "http://adfs.contoso.local/adfs/oauth2/token"}),
            ProtocolError,
            "is not on the authority's origin",
        ),
        (
            document({"token_endpoint": "https://adfs.contoso.local:99999/adfs/oauth2/token"}),
            ProtocolError,
            "is not on the authority's origin",
        ),
        (
            TransportError("connect", "refused"),
            CredentialUnavailableError,
            f"ADFS at {CONFIGURATION} could not be reached (connect)",
        ),
    ],
)
def test_discovery_failures(reply: Reply | BaseException, error: type[Exception], text: str) -> None:
    # A refused connection is retried per policy E: script the retries too.
    script = [reply, None, reply, None, reply, None, reply] if isinstance(reply, TransportError) else [reply]
    with pytest.raises(error) as info:
        fetch(credential(), ScriptedIO(*script))
    assert text in str(info.value)
    assert str(info.value).startswith("ClientSecretCredential: ")
    assert SECRET not in str(info.value)
