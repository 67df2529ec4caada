"""The Azure Arc source as a core flow (PROTOCOL.md §4.2, §4.3, §4.6, §10 items 6, 7, 26): every
(state, reply) move of the challenge, the key path rules checked before any read, the key file's
limits, the selector echo, policy S, and the key in no message."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from azid_core.drive import run
from azid_core.effects import FileContent, HttpRequest, HttpResponse, ReadFile, Sleep
from azid_core.errors import (
    AuthError,
    AzidError,
    ConfigError,
    CredentialUnavailableError,
    NotConfiguredError,
    ProtocolError,
    TransportError,
)
from azid_core.managed_identity.arc import MOVES, ArcReply, ArcSource, ArcState, arc_flow, arc_source
from azid_core.managed_identity.common import Selector, SourceCall
from azid_core.testing import ScriptedIO
from azid_core.tokens import AccessTokenInfo

if TYPE_CHECKING:
    from azid_core.effects import Reply

NOW = 1_700_000_000.0
ENDPOINT = "http://127.0.0.1:40342/metadata/identity/oauth2/token"
REQUEST_ID = "00010203-0405-4607-8809-0a0b0c0d0e0f"
KEY = "arcK3y-0123456789abcdefSECRET"
KEY_PATH = "/var/opt/azcmagent/tokens/0123abcd.key"
CALL = SourceCall(
    resource="https://vault.azure.net",
    selector=None,
    claims=None,
    cached_token=None,
    in_chain=False,
    user_agent="azid/test",
    request_id=REQUEST_ID,
    timeout=30.0,
)
LINUX = arc_source(ENDPOINT, key_directory=None, platform="linux", env={})


def challenge(realm: str = KEY_PATH, header: str = "WWW-Authenticate") -> HttpResponse:
    return HttpResponse(401, ((header, f"Basic realm={realm}"),), b'{"error":"unauthorized"}')


def key_file(data: bytes = KEY.encode()) -> FileContent:
    return FileContent(data, len(data), 1)


def token_reply(**extra: Any) -> HttpResponse:
    body = {"access_token": "at-arc", "expires_in": "3600", "expires_on": str(int(NOW) + 86400), **extra}
    return HttpResponse(200, (("Content-Type", "application/json"),), json.dumps(body).encode())


def status(code: int, body: bytes = b'{"error":"boom"}', *headers: tuple[str, str]) -> HttpResponse:
    return HttpResponse(code, headers, body)


def go(
    *replies: Reply | BaseException, source: ArcSource = LINUX, call: SourceCall = CALL
) -> tuple[Any, ScriptedIO]:
    """Run the flow; its token or error, and the effects it asked for."""
    io = ScriptedIO(*replies)
    try:
        result: Any = run(arc_flow(source, call, now=NOW), io)
    except AzidError as exc:
        result = exc
    assert io.unused == 0
    if isinstance(result, Exception):
        assert KEY not in str(result)  # §4.6: the key is never in a message
    return result, io


def kinds(io: ScriptedIO) -> list[type]:
    return [type(effect) for effect in io.seen]


def sent(io: ScriptedIO) -> list[HttpRequest]:
    return [effect for effect in io.seen if isinstance(effect, HttpRequest)]


# -- the table --

SCRIPTS: dict[tuple[ArcState, ArcReply], tuple[tuple[Reply, ...], type]] = {
    (ArcState.FIRST, ArcReply.OK): ((token_reply(),), AccessTokenInfo),
    (ArcState.FIRST, ArcReply.CHALLENGE): ((challenge(), key_file(), token_reply()), AccessTokenInfo),
    (ArcState.FIRST, ArcReply.OTHER): ((status(403),), AuthError),
    (ArcState.READ, ArcReply.KEY): ((challenge(), key_file(), token_reply()), AccessTokenInfo),
    (ArcState.SECOND, ArcReply.OK): ((challenge(), key_file(), token_reply()), AccessTokenInfo),
    (ArcState.SECOND, ArcReply.CHALLENGE): ((challenge(), key_file(), challenge()), AuthError),
    (ArcState.SECOND, ArcReply.OTHER): ((challenge(), key_file(), status(403)), AuthError),
}


def test_the_table_holds_exactly_the_designed_moves() -> None:
    assert set(MOVES) == set(SCRIPTS)
    terminal = {ArcState.TOKEN, ArcState.FAILED, ArcState.REFUSED}
    assert {state for state, _ in MOVES} == set(ArcState) - terminal
    assert set(MOVES.values()) == terminal | {ArcState.READ, ArcState.SECOND}


@pytest.mark.parametrize("pair", list(MOVES), ids=lambda pair: f"{pair[0].value}-{pair[1].value}")
def test_every_move(pair: tuple[ArcState, ArcReply]) -> None:
    replies, expected = SCRIPTS[pair]
    result, io = go(*replies)
    assert isinstance(result, expected)
    reads = [effect for effect in io.seen if isinstance(effect, ReadFile)]
    assert len(reads) == (1 if len(replies) == 3 else 0)


def test_a_200_to_the_first_request_is_the_token() -> None:
    result, io = go(token_reply())
    assert kinds(io) == [HttpRequest]
    assert (result.token, result.expires_on, result.source) == (
        "at-arc",
        int(NOW) + 3600,
        "ManagedIdentityCredential:arc",
    )
    assert "Authorization" not in dict(sent(io)[0].headers)


def test_the_challenge_exactly() -> None:
    result, io = go(challenge(), key_file(), token_reply())
    assert result.token == "at-arc"
    assert result.expires_on == int(NOW) + 3600  # expires_in before expires_on (§4.2)
    first, read, second = io.seen
    assert read == ReadFile(KEY_PATH, max_bytes=4096, nofollow=True)
    for request in (first, second):
        assert isinstance(request, HttpRequest)
        assert request.method == "GET"
        assert request.url == f"{ENDPOINT}?api-version=2020-06-01&resource=https%3A%2F%2Fvault.azure.net"
        assert (request.body, request.timeout, request.connect_timeout) == (b"", 30.0, 5.0)
        assert request.bypass_proxy
        assert request.pin_sha1 is None
    assert isinstance(first, HttpRequest)
    assert isinstance(second, HttpRequest)
    common = (
        ("User-Agent", "azid/test"),
        ("x-ms-client-request-id", REQUEST_ID),
        ("Accept", "application/json"),
        ("Metadata", "true"),
    )
    assert first.headers == common
    assert second.headers == (*common, ("Authorization", f"Basic {KEY}"))


@pytest.mark.parametrize(
    "header",
    ["BASIC realm=" + KEY_PATH, "basic  realm = " + KEY_PATH + "  ", "Basic Realm=" + KEY_PATH],
)
def test_the_scheme_is_case_insensitive_and_the_path_trimmed(header: str) -> None:
    reply = HttpResponse(401, (("www-authenticate", header),), b"")
    result, io = go(reply, key_file(), token_reply())
    assert result.token == "at-arc"
    assert io.seen[1] == ReadFile(KEY_PATH, max_bytes=4096, nofollow=True)


@pytest.mark.parametrize(
    "headers",
    [
        (),
        (("WWW-Authenticate", "Bearer realm=" + KEY_PATH),),
        (("WWW-Authenticate", "Basic"),),
        (("WWW-Authenticate", "Basic realm"),),
        (("WWW-Authenticate", "Basic realm=  "),),
        (("WWW-Authenticate", "Basic path=" + KEY_PATH),),
    ],
    ids=["missing", "bearer", "no-realm", "no-equals", "empty-path", "not-realm"],
)
def test_a_missing_or_malformed_challenge_is_a_protocol_error_and_nothing_is_read(
    headers: tuple[tuple[str, str], ...],
) -> None:
    result, io = go(HttpResponse(401, headers, b""))
    assert isinstance(result, ProtocolError)
    assert result.field == "WWW-Authenticate"
    assert "Basic realm=<path>" in str(result)
    assert kinds(io) == [HttpRequest]


@pytest.mark.parametrize(
    ("realm", "rule"),
    [
        ("tokens/0123abcd.key", "not absolute"),
        ("/var/opt/azcmagent/tokens/../tokens/0123abcd.key", "'..'"),
        ("/var/opt/azcmagent/tokens/sub/../0123abcd.key", "'..'"),
        ("/etc/shadow.key", "not directly in /var/opt/azcmagent/tokens"),
        ("/var/opt/azcmagent/tokens/sub/0123abcd.key", "not directly in"),
        ("/var/opt/azcmagent/0123abcd.key", "not directly in"),
        ("/tmp/var/opt/azcmagent/tokens/0123abcd.key", "not directly in"),
        ("/var/opt/azcmagent/tokens/0123abcd.txt", "does not end in .key"),
        ("/var/opt/azcmagent/tokens/0123abcd.KEY", "does not end in .key"),
    ],
)
def test_a_key_path_breaking_a_rule_is_rejected_before_any_read(realm: str, rule: str) -> None:
    result, io = go(challenge(realm))
    assert isinstance(result, AuthError)
    assert (result.status, result.error) == (401, "arc_challenge_rejected")
    assert rule in str(result)
    assert str(result).startswith("ManagedIdentityCredential (arc): ")
    assert kinds(io) == [HttpRequest]  # no ReadFile, no second request


def test_redundant_slashes_are_normalized_not_rejected() -> None:
    result, io = go(challenge("/var/opt/azcmagent//tokens/./0123abcd.key"), key_file(), token_reply())
    assert result.token == "at-arc"
    assert io.seen[1] == ReadFile(KEY_PATH, max_bytes=4096, nofollow=True)


def test_windows_key_directory_under_programdata_case_insensitive() -> None:
    source = arc_source(ENDPOINT, key_directory=None, platform="win32", env={"ProgramData": "D:\\Data"})
    assert source.key_directory == "D:\\Data\\AzureConnectedMachineAgent\\Tokens"
    realm = "d:\\data\\azureconnectedmachineagent\\tokens\\0123ABCD.KEY"
    result, io = go(challenge(realm), key_file(), token_reply(), source=source)
    assert result.token == "at-arc"
    assert io.seen[1] == ReadFile(realm, max_bytes=4096, nofollow=True)


def test_windows_default_programdata() -> None:
    source = arc_source(ENDPOINT, key_directory=None, platform="win32", env={"PROGRAMDATA": ""})
    assert source.key_directory == "C:\\ProgramData\\AzureConnectedMachineAgent\\Tokens"


@pytest.mark.parametrize(
    ("realm", "rule"),
    [
        ("\\ProgramData\\AzureConnectedMachineAgent\\Tokens\\a.key", "not absolute"),
        ("C:ProgramData\\AzureConnectedMachineAgent\\Tokens\\a.key", "not absolute"),
        ("C:\\ProgramData\\AzureConnectedMachineAgent\\Tokens\\..\\Tokens\\a.key", "'..'"),
        ("C:/ProgramData/AzureConnectedMachineAgent/Tokens/../Tokens/a.key", "'..'"),
        ("D:\\ProgramData\\AzureConnectedMachineAgent\\Tokens\\a.key", "not directly in"),
        ("C:\\ProgramData\\AzureConnectedMachineAgent\\Tokens\\a.txt", "does not end in .key"),
    ],
)
def test_windows_path_rules(realm: str, rule: str) -> None:
    source = arc_source(ENDPOINT, key_directory=None, platform="win32", env={})
    result, io = go(challenge(realm), source=source)
    assert isinstance(result, AuthError)
    assert result.error == "arc_challenge_rejected"
    assert rule in str(result)
    assert kinds(io) == [HttpRequest]


def test_windows_forward_slashes_are_the_same_directory() -> None:
    source = arc_source(ENDPOINT, key_directory=None, platform="win32", env={})
    realm = "C:/ProgramData/AzureConnectedMachineAgent/Tokens/a.key"
    result, io = go(challenge(realm), key_file(), token_reply(), source=source)
    assert result.token == "at-arc"
    assert io.seen[1] == ReadFile(
        "C:\\ProgramData\\AzureConnectedMachineAgent\\Tokens\\a.key", 4096, None, True
    )


def test_another_platform_without_a_key_directory_is_unavailable_at_the_challenge() -> None:
    source = arc_source(ENDPOINT, key_directory=None, platform="darwin", env={})
    assert source.key_directory is None
    result, io = go(challenge(), source=source)
    assert type(result) is CredentialUnavailableError
    assert "arc_key_directory" in str(result)
    assert kinds(io) == [HttpRequest]
    # A token without a challenge needs no directory.
    assert go(token_reply(), source=source)[0].token == "at-arc"


def test_arc_key_directory_replaces_the_default() -> None:
    source = arc_source(ENDPOINT, key_directory="/srv/arc/keys/", platform="darwin", env={})
    assert source.key_directory == "/srv/arc/keys"
    result, _ = go(challenge("/srv/arc/keys/k.key"), key_file(), token_reply(), source=source)
    assert result.token == "at-arc"
    result, _ = go(challenge(KEY_PATH), source=source)
    assert isinstance(result, AuthError)
    assert "not directly in /srv/arc/keys" in str(result)
    windows = arc_source(ENDPOINT, key_directory="E:\\keys", platform="win32", env={})
    assert windows.key_directory == "E:\\keys"


@pytest.mark.parametrize(
    ("directory", "platform"), [("keys", "linux"), ("\\keys", "win32"), ("E:keys", "win32")]
)
def test_a_relative_arc_key_directory_is_a_config_error(directory: str, platform: str) -> None:
    with pytest.raises(ConfigError, match="arc_key_directory is invalid"):
        arc_source(ENDPOINT, key_directory=directory, platform=platform, env={})


# -- the key file --


def test_a_4097_byte_file_is_rejected_and_not_sent() -> None:
    data = b"k" * 4097
    result, io = go(challenge(), FileContent(data, 4097, 1))
    assert isinstance(result, AuthError)
    assert result.error == "arc_challenge_rejected"
    assert "more than 4096 bytes" in str(result)
    assert kinds(io) == [HttpRequest, ReadFile]
    result, _ = go(challenge(), FileContent(b"k" * 10, 5000, 1))  # grew after the adapter's stat
    assert isinstance(result, AuthError)
    assert "more than 4096 bytes" in str(result)


def test_a_4096_byte_file_is_fine() -> None:
    data = b"k" * 4096
    result, io = go(challenge(), FileContent(data, 4096, 1), token_reply())
    assert result.token == "at-arc"
    assert dict(sent(io)[1].headers)["Authorization"] == "Basic " + "k" * 4096


@pytest.mark.parametrize("kind", ["file_error", "file_not_found"])
def test_a_symlink_or_missing_file_is_rejected(kind: str) -> None:
    # The adapter refuses a final symlink under nofollow (§0.1): its read fails and nothing is sent.
    result, io = go(challenge(), TransportError(kind, f"{KEY_PATH} is a symbolic link"))
    assert isinstance(result, AuthError)
    assert result.error == "arc_challenge_rejected"
    assert f"cannot be read ({kind})" in str(result)
    assert isinstance(result.__cause__, TransportError)
    assert kinds(io) == [HttpRequest, ReadFile]
    assert io.seen[1] == ReadFile(KEY_PATH, max_bytes=4096, nofollow=True)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\xff\xfe" + KEY.encode(), "not UTF-8"),
        (KEY.encode() + b"\n", "control"),
        (KEY.encode() + b"\x00", "control"),
        ("ключ".encode(), "non-ASCII"),
        (b"", "empty"),
    ],
)
def test_a_key_that_is_no_header_value_is_a_protocol_error(data: bytes, problem: str) -> None:
    result, io = go(challenge(), key_file(data))
    assert isinstance(result, ProtocolError)
    assert result.field == "key file"
    assert problem in str(result)
    assert kinds(io) == [HttpRequest, ReadFile]


def test_an_adapter_answering_the_read_with_something_else_is_a_bug() -> None:
    result, _ = go(challenge(), HttpResponse(200))
    assert type(result) is AzidError
    result, _ = go(challenge(), FileContent(None, 3, 1))
    assert type(result) is AzidError


def test_the_key_is_masked_when_the_agent_echoes_it() -> None:
    echo = json.dumps({"error": KEY, "detail": f"bad key {KEY}"}).encode()
    result, _ = go(challenge(), key_file(), status(401, echo))
    assert isinstance(result, AuthError)
    assert result.status == 401
    assert "****" in str(result)
    assert result.body_excerpt is not None
    assert KEY not in result.body_excerpt
    failing = [status(500, echo), None, status(500, echo), None, status(500, echo), None, status(500, echo)]
    result, _ = go(challenge(), key_file(), *failing)
    assert isinstance(result, AuthError)
    assert result.status == 500
    assert result.error == "****"
    closed = TransportError("closed", f"reset after {KEY}")
    result, _ = go(challenge(), key_file(), closed, None, closed, None, closed, None, closed)
    assert type(result) is CredentialUnavailableError
    assert "reset after ****" in str(result)
    result, _ = go(challenge(), key_file(), status(200, echo))
    assert isinstance(result, ProtocolError)


# -- outcomes and retries --


def test_other_first_replies_follow_section_4_3() -> None:
    result, _ = go(status(400, b'{"error":"invalid_request","error_description":"Identity not found"}'))
    assert isinstance(result, NotConfiguredError)
    assert "Identity not found" in str(result)
    result, _ = go(status(404, b"not here", ("x-ms-request-id", "svc-1")))
    assert isinstance(result, AuthError)
    assert result.status == 404
    assert "svc-1" in str(result)
    result, _ = go(status(200, b"<html>"))
    assert isinstance(result, ProtocolError)


def test_policy_s_retries_then_reports_the_last_reply() -> None:
    result, io = go(
        status(503), None, status(429, b"", ("Retry-After", "2")), None, status(500), None, status(502)
    )
    assert isinstance(result, AuthError)
    assert result.status == 502
    assert [e.seconds for e in io.seen if isinstance(e, Sleep)] == [0.0, 2.0, 3.2]
    result, io = go(status(503), None, challenge(), key_file(), status(503), None, token_reply())
    assert result.token == "at-arc"
    assert kinds(io) == [HttpRequest, Sleep, HttpRequest, ReadFile, HttpRequest, Sleep, HttpRequest]


def test_unreachable_standalone_after_retries_and_in_a_chain_at_once() -> None:
    refused = TransportError("connect", "refused")
    result, io = go(refused, None, refused, None, refused, None, refused)
    assert type(result) is CredentialUnavailableError
    assert "(connect)" in str(result)
    assert kinds(io) == [HttpRequest, Sleep, HttpRequest, Sleep, HttpRequest, Sleep, HttpRequest]
    result, io = go(TransportError("connect", "refused"), call=CALL._replace(in_chain=True))
    assert type(result) is CredentialUnavailableError
    assert kinds(io) == [HttpRequest]
    result, _ = go(TransportError("too_large", "over 1 MiB"))
    assert isinstance(result, ProtocolError)


# -- user-assigned identities --


@pytest.mark.parametrize(
    ("selector", "query", "echo"),
    [
        (Selector("client_id", "C-1"), "client_id=C-1", {"client_id": "c-1"}),
        (Selector("object_id", "O-1"), "object_id=O-1", {"Object_ID": "o-1"}),
        (Selector("resource_id", "/sub/x/mi"), "msi_res_id=%2Fsub%2Fx%2Fmi", {"msi_res_id": "/SUB/x/mi"}),
        (Selector("resource_id", "/sub/x/mi"), "msi_res_id=%2Fsub%2Fx%2Fmi", {"mi_res_id": "/sub/x/mi"}),
    ],
)
def test_a_user_assigned_identity_is_asked_for_and_must_be_echoed(
    selector: Selector, query: str, echo: dict[str, str]
) -> None:
    call = CALL._replace(selector=selector)
    result, io = go(challenge(), key_file(), token_reply(**echo), call=call)
    assert result.token == "at-arc"
    for request in (io.seen[0], io.seen[2]):
        assert isinstance(request, HttpRequest)
        assert request.url.endswith("&" + query)
    result, _ = go(token_reply(client_id="someone-else", object_id=7), call=call)
    assert isinstance(result, NotConfiguredError)
    assert selector.kind in str(result)
    assert selector.value in str(result)
    assert "at-arc" not in str(result)  # the token in the reply is masked
