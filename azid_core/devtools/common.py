"""What the developer-tool credentials share (PROTOCOL.md §5.1, §5.3, §7): the options, the §5.1
allow-lists, the working directory and timeout, one `RunCommand` and its failures, the rows of §5.3
every tool has, the cache key and the switch that turns the cache off.

A tool's module says only what is its own: the argv, the added environment, its error rows and how
its output reads.
"""

from __future__ import annotations

import base64
import re
import sys
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from ..cache import CacheEntry, TokenCache
from ..effects import CommandResult, RunCommand
from ..entra.authority import check_tenant_id, resolve_tenant
from ..errors import (
    AzidError,
    ConfigError,
    CredentialUnavailableError,
    DeveloperToolError,
    TransportError,
    protocol_error,
)
from ..host import host_environ
from ..logs import debug
from ..options import check_scopes, merge_claims
from ..redact import excerpt
from ..tokens import AccessToken, AccessTokenInfo, is_token_text, parse_expiry, refresh_time

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ..acquire import TokenCall
    from ..cache import CacheKey
    from ..effects import Flow

__all__ = [
    "DEFAULT_TIMEOUT",
    "SCOPE",
    "SUBSCRIPTION",
    "DeveloperToolCredential",
    "allowed_value",
    "claims_base64",
    "resource_of",
]

DEFAULT_TIMEOUT = 10.0  # §5.1
MAX_TIMEOUT = 600.0  # §5.1: AZID_PROCESS_TIMEOUT and process_timeout above 0, at most 600 s
MAX_VALUE_LENGTH = 1024  # §5.1
# §5.1: what may reach a tool's command line. Nothing a shell or cmd.exe (az.cmd) would read as
# syntax, and nothing starting with '-' (an option of its own).
SCOPE = re.compile(r"[A-Za-z0-9_.:/-]+", re.ASCII)
SUBSCRIPTION = re.compile(r"[A-Za-z0-9_. -]+", re.ASCII)
_DEFAULT_SUFFIX = "/.default"


def allowed_value(value: object, *, name: str, pattern: re.Pattern[str], rule: str, owner: str) -> str:
    """`value` if it passes a §5.1 allow-list, else ConfigError (values here are never secrets)."""
    if (
        not isinstance(value, str)
        or len(value) > MAX_VALUE_LENGTH
        or value.startswith("-")
        or not pattern.fullmatch(value)
    ):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:79] + "…"
        raise ConfigError(
            f"{owner}: {name} is invalid: use only {rule}, not starting with '-', at most "
            f"{MAX_VALUE_LENGTH} characters (got {shown})"
        )
    return value


def resource_of(scope: str) -> str:
    """The resource az and pwsh ask for: the scope without a trailing `/.default`."""
    return scope[: -len(_DEFAULT_SUFFIX)] if scope.endswith(_DEFAULT_SUFFIX) else scope


def claims_base64(claims: str) -> str:
    """§5.3: padded standard base64 of the claims' UTF-8."""
    return base64.b64encode(claims.encode("utf-8")).decode("ascii")


def _process_timeout(value: object, env: Mapping[str, str], owner: str) -> float:
    """§5.1: `process_timeout`, else AZID_PROCESS_TIMEOUT, else 10 s; above 0 and at most 600."""
    name, seconds = "process_timeout", value
    if value is None:
        text = env.get("AZID_PROCESS_TIMEOUT", "").strip()
        if not text:
            return DEFAULT_TIMEOUT
        name = "AZID_PROCESS_TIMEOUT"
        try:
            seconds = float(text)
        except ValueError:
            seconds = None
    # `not 0 < s <= 600` also refuses NaN.
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= MAX_TIMEOUT:
        raise ConfigError(
            f"{owner}: {name} is invalid: a number of seconds above 0 and at most 600 is required"
        )
    return float(seconds)


def _allowed_tenants(tenants: Iterable[str], owner: str) -> tuple[str, ...]:
    if isinstance(tenants, str):
        raise ConfigError(
            f"{owner}: additionally_allowed_tenants is invalid: a list of tenant IDs is required"
        )
    return tuple(
        t if t == "*" else check_tenant_id(t, owner=owner, name="additionally_allowed_tenants")
        for t in tenants
    )


def _windows_root(env: Mapping[str, str]) -> str | None:
    """%SYSTEMROOT% (Windows names are case-insensitive; an injected mapping may not be)."""
    return next((value for name, value in env.items() if name.upper() == "SYSTEMROOT" and value), None)


class _Uncached(TokenCache):
    """`cache_tokens=False`: a cache that never keeps a token, so every call runs the tool (§5.1).
    `serve` and `plan` then always find nothing, and the frontends' fast path stays as it is."""

    def store(self, key: CacheKey, info: AccessTokenInfo, now: float) -> CacheEntry:
        return CacheEntry(info, AccessToken(info.token, info.expires_on), now, now)


class DeveloperToolCredential(ABC):
    """A token from a developer tool the user is signed in to (§5). `developer_tool` tells chains
    that any error of this member falls through (§6.1)."""

    developer_tool = True
    #: The program (argv[0] unless `tool_path`), also the ProtocolError source and cache identity.
    tool: str
    #: What the user knows it as, for messages.
    label: str
    #: §5.3 row 1, when the program is missing.
    missing: str
    #: §5.1: the environment the tool gets on top of the adapter's.
    added_env: tuple[tuple[str, str], ...] = ()
    #: az and pwsh take exactly one scope.
    one_scope = True

    _cache: TokenCache

    def __init__(
        self,
        *,
        tenant_id: str,
        additionally_allowed_tenants: Iterable[str],
        process_timeout: float | None,
        tool_path: str | None,
        cache_tokens: bool,
        env: Mapping[str, str] | None,
        platform: str | None,
    ) -> None:
        owner = type(self).__name__
        environment = host_environ() if env is None else env
        if tenant_id != "":
            check_tenant_id(tenant_id, owner=owner)
        self._tenant_id = tenant_id
        self._allowed = _allowed_tenants(additionally_allowed_tenants, owner)
        self._timeout = _process_timeout(process_timeout, environment, owner)
        if tool_path is not None and (not isinstance(tool_path, str) or not tool_path or "\x00" in tool_path):
            raise ConfigError(
                f"{owner}: tool_path is invalid: the path of the {self.label} executable is required"
            )
        self._tool_path = tool_path
        if not isinstance(cache_tokens, bool):
            raise ConfigError(f"{owner}: cache_tokens is invalid: True or False is required")
        self._cache_tokens = cache_tokens
        self._platform = sys.platform if platform is None else platform
        # §5.1: a working directory outside the project, so a tool never picks up its files.
        self._cwd = _windows_root(environment) if self._platform == "win32" else "/bin"
        self._multitenant_disabled = bool(environment.get("AZURE_IDENTITY_DISABLE_MULTITENANTAUTH"))
        self._reset_transient()

    # -- what acquire_flow needs (the TokenSource protocol) --

    @property
    def token_cache(self) -> TokenCache:
        return self._cache

    @property
    def _identity(self) -> str:
        return f"{self.tool}:"  # §7.1 `{tool}:{subscription}`; only az has a subscription

    def cache_key(self, call: TokenCall) -> CacheKey:
        """Scopes and tenant through the §5.1 allow-lists, claims type-checked: all before any effect."""
        owner = type(self).__name__
        scopes = check_scopes(call.scopes, owner=owner)
        for scope in scopes:
            allowed_value(
                scope, name="scopes", pattern=SCOPE, rule="letters, digits and _ . : / -", owner=owner
            )
        if self.one_scope and len(scopes) != 1:
            raise ConfigError(f"{owner}: scopes is invalid: exactly one scope is required, not {len(scopes)}")
        tenant = resolve_tenant(
            self._tenant_id,
            call.tenant_id,
            allowed=self._allowed,
            multitenant_disabled=self._multitenant_disabled,
            owner=owner,
        )
        merge_claims(call.claims, enable_cae=False, owner=owner)  # tools ignore enable_cae (§1.4)
        return (tuple(sorted(set(scopes))), tenant, False, self._identity)

    def fetch_flow(self, call: TokenCall, key: CacheKey, now: float) -> Flow[AccessTokenInfo]:
        """Run the tool once and read its token.

        Yields:  RunCommand (pwsh on Windows: a second one with `powershell` if `pwsh` is missing).
        Raises:  NotConfiguredError for claims to az or pwsh, and when the tool is not signed in;
                 CredentialUnavailableError when it is missing, times out or cannot start;
                 DeveloperToolError for any other failure; ProtocolError for output it cannot
                 read (§5.3).
        """
        owner = type(self).__name__
        args = self._args(call.scopes, key[1], call.claims or None)
        if self._cwd is None:
            raise CredentialUnavailableError(f"{owner}: SYSTEMROOT is not set, so {self.label} cannot be run")
        result, argv = yield from self._run(args)
        stdout = result.stdout.decode("utf-8", "replace")
        stderr = result.stderr.decode("utf-8", "replace")
        code = result.returncode
        if code == 127 or (code != 0 and "' is not recognized" in stderr) or self._not_installed(code):
            raise CredentialUnavailableError(f"{owner}: {self.missing} (exit code {code}; tried {argv[0]!r})")
        failure = self._failure(code, stdout, stderr)
        if failure is not None:
            raise failure
        if code != 0:
            shown = self._excerpt(stdout, stderr)
            raise DeveloperToolError(
                f"{owner}: `{self._shown(argv)}` exited with {code}: {shown}",
                tool=self.tool,
                returncode=code,
                stderr_excerpt=shown,
            )
        return self._parse(stdout, now)

    # -- running --

    def _programs(self) -> tuple[str, ...]:
        """The argv[0] values to try in turn while the previous one is not found."""
        return (self._tool_path or self.tool,)

    def _run(self, args: tuple[str, ...]) -> Flow[tuple[CommandResult, tuple[str, ...]]]:
        owner = type(self).__name__
        programs = self._programs()
        missing: TransportError | None = None
        for program in programs:
            argv = (program, *args)
            effect = RunCommand(argv, self._cwd, self.added_env, self._timeout)
            debug("devtools", "%s: running %s", owner, self._shown(argv))
            try:
                reply = yield effect
            except TransportError as exc:
                if exc.kind != "not_found":
                    raise self._transport_failure(exc, program) from exc
                missing = exc
                continue
            if not isinstance(reply, CommandResult):
                raise AzidError(
                    f"the adapter answered {effect!r} with {type(reply).__name__}, not CommandResult"
                )
            return reply, argv
        assert missing is not None
        raise CredentialUnavailableError(f"{owner}: {self._not_found(programs)} (not_found)") from missing

    def _not_found(self, programs: tuple[str, ...]) -> str:
        if self._tool_path is not None:
            return f"{self.label} not found at {self._tool_path!r} (tool_path)"
        tried = " or ".join(repr(name) for name in programs)
        suffixes = " (as .cmd, .exe or bare)" if self._platform == "win32" else ""
        return f"{self.missing}: looked for {tried}{suffixes}"

    def _transport_failure(self, exc: TransportError, program: str) -> AzidError:
        owner = type(self).__name__
        if exc.kind == "too_large":  # §8: output over the limit is no reply we can read
            return protocol_error(owner, self.tool, "output", f"over the size limit ({exc.kind})")
        if exc.kind == "timeout":
            return CredentialUnavailableError(
                f"{owner}: {self.label} did not finish within {self._timeout:g} s; raise the limit with "
                f"process_timeout or AZID_PROCESS_TIMEOUT (timeout)"
            )
        return CredentialUnavailableError(
            f"{owner}: {program!r} could not be started within the {self._timeout:g} s limit "
            f"(process_timeout/AZID_PROCESS_TIMEOUT): {excerpt(exc.detail)} ({exc.kind})"
        )

    def _shown(self, argv: tuple[str, ...]) -> str:
        """The command line as messages and logs show it."""
        return " ".join(argv)

    # -- reading --

    def _token(self, value: object, field: str) -> str:
        """A token field: 1 to 65536 printable ASCII characters (§1.6)."""
        if not is_token_text(value):
            problem = "missing" if value is None else "not 1 to 65536 printable ASCII characters"
            raise protocol_error(type(self).__name__, self.tool, field, problem)
        return value

    def _info(self, token: str, expiry: object, field: str, now: float, **options: Any) -> AccessTokenInfo:
        owner = type(self).__name__
        expires_on = parse_expiry(
            expiry, field=field, source=self.tool, owner=owner, now=now, secrets=(token,), **options
        )
        return AccessTokenInfo(
            token, expires_on, refresh_on=refresh_time(now, expires_on, None), source=owner
        )

    def _excerpt(self, stdout: str, stderr: str) -> str:
        """What a DeveloperToolError shows of the output, masked (§5.3)."""
        return excerpt(stderr.strip() or stdout.strip())

    def _not_installed(self, code: int) -> bool:
        """A tool-specific "not installed" exit code (§5.3 row 1)."""
        return False

    # -- what a tool defines --

    @abstractmethod
    def _args(self, scopes: tuple[str, ...], tenant: str, claims: str | None) -> tuple[str, ...]:
        """argv after the program (§5.1); raises NotConfiguredError when claims cannot be passed on."""

    @abstractmethod
    def _failure(self, code: int, stdout: str, stderr: str) -> AzidError | None:
        """The tool's own §5.3 rows, or None."""

    @abstractmethod
    def _parse(self, stdout: str, now: float) -> AccessTokenInfo:
        """The token in a successful run's stdout (§5.2)."""

    # -- pickling: configuration only --

    #: Rebuilt lazily, never pickled (§7.4).
    _transient = ("_cache",)

    def _reset_transient(self) -> None:
        self._cache = TokenCache() if self._cache_tokens else _Uncached()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in self._transient:
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_transient()

    def _repr_fields(self) -> list[str]:
        fields = [f"tenant_id={self._tenant_id!r}", f"process_timeout={self._timeout:g}"]
        if self._tool_path is not None:
            fields.append(f"tool_path={self._tool_path!r}")
        if not self._cache_tokens:
            fields.append("cache_tokens=False")
        return fields

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._repr_fields())})"
