"""Azure Arc's managed identity (PROTOCOL.md §4.2, §4.3, §4.6): the GET to the agent's token
endpoint and the challenge it answers with.

The agent answers an unauthenticated GET with a 401 naming a key file; whoever can read that file
(root or the agent's group) proves it by repeating the GET with the file's content. azid checks the
path against the one directory the agent writes keys to before it asks to read anything, so a
rogue listener on the agent's port cannot make us send it the content of another file
(§10 item 6). The flow's moves are the `MOVES` table; the key never appears in a message.
"""

from __future__ import annotations

import ntpath
import posixpath
from enum import Enum
from typing import TYPE_CHECKING, NamedTuple

from ..effects import FileContent, ReadFile
from ..errors import (
    AuthError,
    AzidError,
    ConfigError,
    CredentialUnavailableError,
    NotConfiguredError,
    TransportError,
    protocol_error,
)
from ..redact import excerpt, mask
from ..tokens import json_object
from ..wire import SERVICE_POLICY, send_with_retry
from .common import OWNER, chain_policy, read_reply, refusal, source_request, unreachable

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..effects import Flow, HttpResponse
    from ..tokens import AccessTokenInfo
    from .common import SourceCall

__all__ = ["MOVES", "ArcReply", "ArcSource", "ArcState", "arc_flow", "arc_source"]

SOURCE = "arc"
NAME = f"{OWNER} ({SOURCE})"
API_VERSION = "2020-06-01"
MAX_KEY_BYTES = 4096
LINUX_KEY_DIRECTORY = "/var/opt/azcmagent/tokens"
# The selector's query name, and the reply fields that may echo it (§4.2, §4.3 row 2).
SELECTOR_QUERY = {"client_id": "client_id", "object_id": "object_id", "resource_id": "msi_res_id"}
SELECTOR_ECHO = {
    "client_id": ("client_id",),
    "object_id": ("object_id",),
    "resource_id": ("msi_res_id", "mi_res_id"),
}


class ArcSource(NamedTuple):
    """Where the agent listens, and the one directory its challenge may name.

    `key_directory` is None on a platform with no known key directory and no `arc_key_directory`:
    a challenge there makes the source unavailable. `windows` picks Windows path rules.
    """

    endpoint: str
    key_directory: str | None
    windows: bool


def arc_source(
    endpoint: str, *, key_directory: str | None, platform: str, env: Mapping[str, str]
) -> ArcSource:
    """The Arc source for `endpoint` on `platform` (a `sys.platform` value). `key_directory` is the
    `arc_key_directory` option; by default the agent's own directory for the platform (§4.6).

    Raises:  ConfigError when `key_directory` is not an absolute path.
    """
    windows = platform == "win32"
    paths = ntpath if windows else posixpath
    if key_directory is not None:
        if not _absolute(key_directory, windows=windows):
            raise ConfigError(f"{OWNER}: arc_key_directory is invalid: it must be an absolute path")
        return ArcSource(endpoint, paths.normpath(key_directory), windows)
    if windows:
        # Environment names are case-insensitive on Windows.
        data = next((value for name, value in env.items() if name.upper() == "PROGRAMDATA" and value), None)
        directory = ntpath.join(data or "C:\\ProgramData", "AzureConnectedMachineAgent", "Tokens")
        return ArcSource(endpoint, ntpath.normpath(directory), True)
    return ArcSource(endpoint, LINUX_KEY_DIRECTORY if platform.startswith("linux") else None, False)


def _absolute(path: str, *, windows: bool) -> bool:
    if windows:
        # A drive or UNC share and a root: `\x` and `C:x` are relative to something we don't know.
        drive, rest = ntpath.splitdrive(path)
        return bool(drive) and rest[:1] in ("\\", "/")
    return posixpath.isabs(path)


class ArcState(Enum):
    """Where the challenge stands (§4.6)."""

    FIRST = "first"  # the GET without a key
    READ = "read"  # reading the key file the challenge named
    SECOND = "second"  # the GET with the key
    TOKEN = "token"  # a 2xx: read the token
    FAILED = "failed"  # another status: the §4.3 error
    REFUSED = "refused"  # the key was not accepted


class ArcReply(Enum):
    """What came back, as the table sees it."""

    OK = "2xx"
    CHALLENGE = "401"
    OTHER = "other status"
    KEY = "key file"


# (state, reply) -> next state. A 200 to FIRST is the token (§10 item 26); a 401 to SECOND is final.
MOVES: dict[tuple[ArcState, ArcReply], ArcState] = {
    (ArcState.FIRST, ArcReply.OK): ArcState.TOKEN,
    (ArcState.FIRST, ArcReply.CHALLENGE): ArcState.READ,
    (ArcState.FIRST, ArcReply.OTHER): ArcState.FAILED,
    (ArcState.READ, ArcReply.KEY): ArcState.SECOND,
    (ArcState.SECOND, ArcReply.OK): ArcState.TOKEN,
    (ArcState.SECOND, ArcReply.CHALLENGE): ArcState.REFUSED,
    (ArcState.SECOND, ArcReply.OTHER): ArcState.FAILED,
}


def _kind(response: HttpResponse) -> ArcReply:
    if 200 <= response.status < 300:
        return ArcReply.OK
    return ArcReply.CHALLENGE if response.status == 401 else ArcReply.OTHER


def arc_flow(source: ArcSource, call: SourceCall, *, now: float) -> Flow[AccessTokenInfo]:
    """Get a token from the Arc agent, answering its challenge (§4.6).

    Yields:  HttpRequest, Sleep between retries (policy S), and one ReadFile for the key.
    Returns: the token.
    Raises:  CredentialUnavailableError when the agent is unreachable, or the platform has no key
             directory; AuthError when the challenge names a file outside the key directory, the
             file is too large or unreadable, the key is refused, or the agent fails (§4.3);
             NotConfiguredError for a 400 or a user-assigned reply that does not echo the selector;
             ProtocolError for a malformed challenge, key or token reply.
    """
    query = [("api-version", API_VERSION), ("resource", call.resource)]
    if call.selector is not None:
        query.append((SELECTOR_QUERY[call.selector.kind], call.selector.value))
    policy = chain_policy(SERVICE_POLICY, call)
    state, key = ArcState.FIRST, None
    while True:
        headers = [("Metadata", "true")]
        if key is not None:
            headers.append(("Authorization", f"Basic {key}"))
        request = source_request("GET", source.endpoint, query, headers, call)
        secrets = (key,) if key else ()
        try:
            response, now = yield from send_with_retry(request, policy, now)
        except TransportError as exc:
            raise unreachable(SOURCE, source.endpoint, exc, secrets) from exc
        state = MOVES[(state, _kind(response))]
        if state is not ArcState.READ:
            break
        key = yield from _read_key(source, response)
        state = MOVES[(state, ArcReply.KEY)]
    if state is ArcState.REFUSED:
        raise refusal(response, source=SOURCE, secrets=secrets, request_id=call.request_id)
    # TOKEN reads the token; FAILED raises the §4.3 error from here.
    token = read_reply(
        response, call, source=SOURCE, expiry_order=("expires_in", "expires_on"), now=now, secrets=secrets
    )
    _check_echo(response, call, secrets)
    return token


def _check_echo(response: HttpResponse, call: SourceCall, secrets: tuple[str, ...]) -> None:
    """§4.3 row 2: the agent answers an unknown user-assigned selector with the system identity's
    token; only a reply naming the selector is the identity asked for."""
    if call.selector is None:
        return
    body = json_object(response.body) or {}
    fields = {name.lower(): value for name, value in body.items() if isinstance(value, str)}
    wanted = call.selector.value.lower()
    if any(fields.get(name, "").lower() == wanted for name in SELECTOR_ECHO[call.selector.kind]):
        return
    raise NotConfiguredError(
        f"{NAME}: the {call.selector.kind} {call.selector.value!r} identity is not assigned here: the reply "
        f"does not name it: {excerpt(response.body, secrets)}"
    )


def _rejected(rule: str, path: str) -> AuthError:
    return AuthError(
        f"{NAME}: the challenge's key file {path!r} is rejected: {rule}",
        status=401,
        error="arc_challenge_rejected",
    )


def _key_path(source: ArcSource, response: HttpResponse) -> str:
    """The key file the 401 names, checked against §4.6's rules; never re-rooted."""
    header = response.header("www-authenticate")
    scheme, _, rest = (header or "").strip().partition(" ")
    realm, equals, value = rest.partition("=")
    path = value.strip()
    if scheme.lower() != "basic" or realm.strip().lower() != "realm" or not equals or not path:
        shown = repr(mask(header)) if header is not None else "missing"
        raise protocol_error(NAME, SOURCE, "WWW-Authenticate", f"not 'Basic realm=<path>': {shown}")
    if source.key_directory is None:
        raise CredentialUnavailableError(
            f"{NAME}: the agent challenged with a key file, but this platform has no Arc key directory "
            "(set arc_key_directory)"
        )
    paths = ntpath if source.windows else posixpath
    if not _absolute(path, windows=source.windows):
        raise _rejected("the path is not absolute", path)
    segments = path.replace("\\", "/").split("/") if source.windows else path.split("/")
    if ".." in segments:
        raise _rejected("the path contains '..'", path)
    normal: str = paths.normpath(path)
    parent, name = paths.split(normal)
    if paths.normcase(parent) != paths.normcase(source.key_directory):
        raise _rejected(f"it is not directly in {source.key_directory}", path)
    if not paths.normcase(name).endswith(".key"):
        raise _rejected("the file name does not end in .key", path)
    return normal


def _read_key(source: ArcSource, challenge: HttpResponse) -> Flow[str]:
    """Read the key the challenge names: at most 4096 bytes, no symlink, printable ASCII (§4.6)."""
    path = _key_path(source, challenge)
    effect = ReadFile(path, max_bytes=MAX_KEY_BYTES, nofollow=True)
    try:
        reply = yield effect
    except TransportError as exc:
        raise _rejected(f"it cannot be read ({exc.kind}): {exc.detail}", path) from exc
    if not isinstance(reply, FileContent) or reply.data is None:
        raise AzidError(f"the adapter answered {effect!r} with {reply!r}")
    if len(reply.data) > MAX_KEY_BYTES or reply.size > MAX_KEY_BYTES:
        raise _rejected(f"it holds more than {MAX_KEY_BYTES} bytes", path)
    try:
        key = reply.data.decode("utf-8")
    except UnicodeDecodeError:
        raise protocol_error(NAME, SOURCE, "key file", f"{path} is not UTF-8 text") from None
    if not key or not key.isprintable() or not key.isascii():
        # A header value must be printable ASCII (§0.4); the content itself is never shown.
        raise protocol_error(
            NAME, SOURCE, "key file", f"{path} is empty or holds a control or non-ASCII character"
        )
    return key
