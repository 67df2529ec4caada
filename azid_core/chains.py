"""Chains of credentials (PROTOCOL.md §6): `ChainedTokenCredential`, `DefaultAzureCredential`,
`DeveloperToolsCredential`, and `explain()`, which says without any I/O what a chain would try.

A chain is itself a core TokenSource with a cache of its own, so an adapter's cached path stays one
lookup. A miss walks the members with `in_chain=True`, each under its own cache and refresh rules
(`acquire_alone`), and remembers the member that served (§6.1); that memory is transient (§7.4).
Chains take no lock: each member applies single-flight itself (§7.3).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, NamedTuple

from .acquire import acquire_alone
from .cache import TokenCache
from .errors import AzidError, ConfigError, CredentialUnavailableError
from .host import host_environ
from .options import check_scopes, merge_claims

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .acquire import TokenCall, TokenSource
    from .cache import CacheKey
    from .effects import Flow
    from .entra.environment import EnvironmentCredential
    from .managed_identity.credential import ManagedIdentityCredential
    from .tokens import AccessTokenInfo

__all__ = [
    "ChainedTokenCredential",
    "DefaultAzureCredential",
    "DeveloperToolsCredential",
    "Explanation",
    "MemberReport",
]

OK, UNAVAILABLE, SKIPPED, FAILED = "ok", "unavailable", "failed (skipped)", "failed"  # §6.1 verdicts
TOKEN_CREDENTIALS = "AZURE_TOKEN_CREDENTIALS"


def _name(member: object) -> str:
    return member.name if isinstance(member, _Placeholder) else type(member).__name__


def _is_developer_tool(member: object) -> bool:
    return bool(getattr(member, "developer_tool", False))


def _announce(owner: str, name: str) -> None:
    """§0.7: the one INFO record of a chain, naming the member that served."""
    import logging

    logging.getLogger("azid.chains").info("%s: %s served the token", owner, name)


class _Placeholder:
    """A member that cannot work here, built in its place: every call is unavailable, for `reason`
    (a DefaultAzureCredential member whose settings are incomplete, §6.2)."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        self._cache = TokenCache()  # always empty: nothing is ever fetched

    def __repr__(self) -> str:
        return f"{self.name}(unavailable)"

    @property
    def token_cache(self) -> TokenCache:
        return self._cache

    def cache_key(self, call: TokenCall) -> CacheKey:
        raise CredentialUnavailableError(f"{self.name}: {self.reason}")

    def fetch_flow(self, call: TokenCall, key: CacheKey, now: float) -> Flow[AccessTokenInfo]:
        raise CredentialUnavailableError(f"{self.name}: {self.reason}")


# -- explain(): what each member would do, as data --


class MemberReport(NamedTuple):
    """One member of a chain: whether it would be tried, whether it is configured here and why."""

    name: str
    tried: bool
    configured: bool
    reason: str
    details: tuple[str, ...] = ()

    def __str__(self) -> str:
        state = "excluded" if not self.tried else "configured" if self.configured else "not configured"
        details = "".join(f"; {detail}" for detail in self.details)
        return f"{self.name}: {state}: {self.reason}{details}"


class Explanation(tuple[MemberReport, ...]):
    """The members of a chain in order; `str()` gives one line per member."""

    __slots__ = ()

    def __str__(self) -> str:
        return "\n".join(f"{index}. {report}" for index, report in enumerate(self, 1))


def _describe(member: object) -> MemberReport:
    """What a member is, from its configuration alone (no I/O)."""
    from .devtools.common import DeveloperToolCredential
    from .entra.environment import EnvironmentCredential
    from .entra.federated import WorkloadIdentityCredential
    from .managed_identity.credential import ManagedIdentityCredential

    name = _name(member)
    if isinstance(member, _Placeholder):
        return MemberReport(name, True, False, member.reason)
    if isinstance(member, EnvironmentCredential):
        return _describe_environment(member)
    if isinstance(member, ManagedIdentityCredential):
        return _describe_managed_identity(member)
    if isinstance(member, WorkloadIdentityCredential):
        details = (f"tenant_id={member._tenant_id}", f"client_id={member._client_id}")
        return MemberReport(name, True, True, f"token file {member._token_file} (read at get_token)", details)
    if isinstance(member, DeveloperToolCredential):
        program = member._tool_path or member.tool
        reason = f"runs `{program}` at get_token (not looked for now)"
        return MemberReport(name, True, True, reason, (f"timeout {member._timeout:g} s",))
    if isinstance(member, ChainedTokenCredential):
        inner = ", ".join(_name(m) for m in member._members)
        return MemberReport(name, True, True, f"a chain of {len(member._members)}: {inner}")
    return MemberReport(name, True, True, "constructed (nothing to check without I/O)")


def _describe_environment(member: EnvironmentCredential) -> MemberReport:
    from .entra import environment as ev

    name = _name(member)
    inner = member._inner
    found = f"set: {', '.join(member._set) or 'none'}"
    if inner is None:
        missing = ", ".join(n for n in ev.NAMES if n not in member._set)
        return MemberReport(
            name, True, False, "no complete group of variables", (found, f"missing: {missing}")
        )
    kinds = {
        "ClientSecretCredential": ("client secret", ev.GROUPS[0]),
        "CertificateCredential": ("certificate", ev.GROUPS[1]),
        "UsernamePasswordCredential": ("username and password", ev.GROUPS[2]),
    }
    kind, group = kinds[type(inner).__name__]
    details = [found]
    # §2.5: the first complete group wins; say which set variables it leaves unused.
    ignored = [n for n in member._set if n not in group and n != ev.TENANT]
    if ignored:
        details.append(f"ignored: {', '.join(ignored)} (the {kind} group wins)")
    return MemberReport(name, True, True, f"{kind} ({type(inner).__name__})", tuple(details))


_SOURCE_VARIABLES = {
    "service_fabric": "IDENTITY_ENDPOINT, IDENTITY_HEADER, IDENTITY_SERVER_THUMBPRINT",
    "app_service": "IDENTITY_ENDPOINT, IDENTITY_HEADER",
    "arc": "IDENTITY_ENDPOINT, IMDS_ENDPOINT",
    "azure_ml": "MSI_ENDPOINT, MSI_SECRET",
    "cloud_shell": "MSI_ENDPOINT",
    "workload_identity": "AZURE_AUTHORITY_HOST, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE",
}


def _describe_managed_identity(member: ManagedIdentityCredential) -> MemberReport:
    name = _name(member)
    source = member._source
    if source is None:
        return MemberReport(name, True, False, str(member._missing))
    selector = member._selector
    identity = f"{selector.kind}={selector.value}" if selector is not None else "system-assigned"
    details = [f"identity: {identity}"]
    if source != "imds":
        reason = f"source {source} (from {_SOURCE_VARIABLES[source]})"
        return MemberReport(name, True, True, reason, tuple(details))
    if member._imds_overridden:
        reason = f"source imds at {member._record.url}"  # type: ignore[attr-defined]  # an ImdsSource
    else:
        reason = "source imds (nothing else detected)"
        if member._agent_path is not None:
            details.append(f"Azure Arc if {member._agent_path} exists (looked for at the first request)")
    # §4.5: in a chain the probe runs unless forced off or the endpoint was given.
    option = member._probe_option
    probe = option is True or (option is None and not member._imds_overridden)
    details.append("IMDS probe first (1 s)" if probe else "no IMDS probe")
    return MemberReport(name, True, True, reason, tuple(details))


# -- the chain --


def _render(owner: str, attempts: tuple[tuple[str, str, str], ...]) -> str:
    lines = [f"{owner} could not get a token. Attempts, in order:"]
    # A nested chain's message has lines of its own: indent them under its entry.
    lines += [f"  {name}: {verdict}: {message}".replace("\n", "\n  ") for name, verdict, message in attempts]
    return "\n".join(lines)


def _final_error(
    owner: str, attempts: tuple[tuple[str, str, str], ...], failure: AzidError | None
) -> AzidError:
    """§6.1: after `failed`, that error's class with its fields; else unavailable (nested chains
    fall through). Members' messages are masked already, so the text holds no secret."""
    text = _render(owner, attempts)
    if failure is None:
        return CredentialUnavailableError(text, attempts=attempts)
    error = copy.copy(failure)
    vars(error).update(message=text, attempts=attempts)
    error.args = (text,)
    return error


class ChainedTokenCredential:
    """Members tried in order until one returns a token (§6.1).

    >>> core = ChainedTokenCredential(ManagedIdentityCredential(), AzureCliCredential())
    """

    _cache: TokenCache
    _selected: int | None

    def __init__(self, *credentials: TokenSource) -> None:
        if not credentials:
            raise ConfigError(
                f"{type(self).__name__}: credentials is invalid: at least one credential is required"
            )
        self._members = credentials
        self._reset_transient()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(m) for m in self._members)})"

    @property
    def credentials(self) -> tuple[TokenSource, ...]:
        return self._members

    @property
    def selected(self) -> str | None:
        """The name of the member that served last, or None before the first token."""
        return None if self._selected is None else _name(self._members[self._selected])

    def explain(self) -> Explanation:
        """The members in order, whether each is configured here and why; no I/O."""
        return Explanation(_describe(member) for member in self._members)

    # -- the TokenSource protocol --

    @property
    def token_cache(self) -> TokenCache:
        return self._cache

    def cache_key(self, call: TokenCall) -> CacheKey:
        owner = type(self).__name__
        scopes = check_scopes(call.scopes, owner=owner)
        merge_claims(call.claims, enable_cae=call.enable_cae, owner=owner)
        return (tuple(sorted(set(scopes))), call.tenant_id or "", call.enable_cae, "chain")

    def fetch_flow(self, call: TokenCall, key: CacheKey, now: float) -> Flow[AccessTokenInfo]:
        """Walk the members (§6.1): the remembered one first, then the others in order.

        Yields:  the members' effects.
        Raises:  the final error of §6.1, with every attempt.
        """
        member_call = call._replace(in_chain=True)
        attempts: list[tuple[str, str, str]] = []
        remembered = self._selected
        order = list(range(len(self._members)))
        if remembered is not None:
            # Tried first; if it cannot serve now, the others are walked in order without it.
            order.remove(remembered)
            order.insert(0, remembered)
        for index in order:
            member = self._members[index]
            name = _name(member)
            try:
                info = yield from acquire_alone(member, member_call, now)
            except CredentialUnavailableError as exc:
                attempts.append((name, UNAVAILABLE, exc.message))
            except AzidError as exc:
                if not _is_developer_tool(member):
                    attempts.append((name, FAILED, exc.message))
                    self._selected = None
                    raise _final_error(type(self).__name__, tuple(attempts), exc) from exc
                attempts.append((name, SKIPPED, exc.message))  # §10 item 25: tools fall through
            else:
                if self._selected != index:
                    self._selected = index
                    _announce(type(self).__name__, name)
                if info.source is None:
                    info.source = name
                return info
        self._selected = None
        raise _final_error(type(self).__name__, tuple(attempts), None)

    # -- pickling: configuration only (§7.4) --

    def _reset_transient(self) -> None:
        self._cache = TokenCache()
        self._selected = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_cache"], state["_selected"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_transient()


# -- DefaultAzureCredential (§6.2) --

_UNSET: Any = object()  # managed_identity_client_id not given: AZURE_CLIENT_ID, as DAC's default

#: §6.2's members in order: (key, class name, exclude flag).
_MEMBERS = (
    ("environment", "EnvironmentCredential", "exclude_environment_credential"),
    ("workload_identity", "WorkloadIdentityCredential", "exclude_workload_identity_credential"),
    ("managed_identity", "ManagedIdentityCredential", "exclude_managed_identity_credential"),
    ("cli", "AzureCliCredential", "exclude_cli_credential"),
    ("powershell", "AzurePowerShellCredential", "exclude_powershell_credential"),
    ("developer_cli", "AzureDeveloperCliCredential", "exclude_developer_cli_credential"),
    ("interactive_browser", "InteractiveBrowserCredential", "exclude_interactive_browser_credential"),
)
_GROUPS = {
    "dev": frozenset({"cli", "powershell", "developer_cli"}),
    "prod": frozenset({"environment", "workload_identity", "managed_identity"}),
    **{class_name.lower(): frozenset({key}) for key, class_name, _ in _MEMBERS},
}


def _token_credentials(env: Mapping[str, str], require_envvar: bool) -> tuple[str, frozenset[str] | None]:
    """§6.2: AZURE_TOKEN_CREDENTIALS, trimmed and lower-cased, and the members it keeps (None: all)."""
    owner = "DefaultAzureCredential"
    value = env.get(TOKEN_CREDENTIALS, "").strip().lower()
    if not value:
        if require_envvar:
            raise ConfigError(
                f"{owner}: {TOKEN_CREDENTIALS} is invalid: require_envvar=True needs it set to one of "
                f"{', '.join(_GROUPS)}"
            )
        return value, None
    if value not in _GROUPS:
        raise ConfigError(
            f"{owner}: {TOKEN_CREDENTIALS} is invalid: {value!r} is not one of {', '.join(_GROUPS)}"
        )
    return value, _GROUPS[value]


def _workload_member(
    env: Mapping[str, str],
    *,
    client_id: str | None,
    tenant_id: str | None,
    authority: str | None,
    request_timeout: float | None,
    entropy: Callable[[int], bytes] | None,
) -> TokenSource:
    """WorkloadIdentityCredential, or a placeholder naming what is missing (§2.3: in DAC an
    unavailable member). Values that are present but invalid still raise ConfigError."""
    from .entra.federated import WorkloadIdentityCredential

    chosen = (
        ("workload_identity_tenant_id", "AZURE_TENANT_ID", tenant_id),
        ("workload_identity_client_id", "AZURE_CLIENT_ID", client_id),
        (None, "AZURE_FEDERATED_TOKEN_FILE", None),
    )
    missing = [
        f"{option} or {variable}" if option else variable
        for option, variable, value in chosen
        if not (value or env.get(variable, ""))
    ]
    if missing:
        return _Placeholder("WorkloadIdentityCredential", f"missing {', '.join(missing)}")
    return WorkloadIdentityCredential(
        tenant_id=tenant_id,
        client_id=client_id,
        authority=authority,
        request_timeout=request_timeout,
        env=env,
        entropy=entropy,
    )


class DefaultAzureCredential(ChainedTokenCredential):
    """The chain most applications start with (§6.2): environment, workload identity, managed
    identity, Azure CLI, Azure PowerShell, Azure Developer CLI (and, when asked for, interactive
    browser sign-in). Members are built now, without I/O; `explain()` says what each would do.

    >>> core = DefaultAzureCredential()
    >>> print(core.explain())
    """

    def __init__(
        self,
        *,
        authority: str | None = None,
        request_timeout: float | None = None,
        exclude_environment_credential: bool | None = None,
        exclude_workload_identity_credential: bool | None = None,
        exclude_managed_identity_credential: bool | None = None,
        exclude_cli_credential: bool | None = None,
        exclude_powershell_credential: bool | None = None,
        exclude_developer_cli_credential: bool | None = None,
        exclude_interactive_browser_credential: bool | None = None,
        exclude_shared_token_cache_credential: bool = False,
        exclude_visual_studio_code_credential: bool = False,
        exclude_broker_credential: bool = False,
        managed_identity_client_id: str | None = _UNSET,
        workload_identity_client_id: str | None = None,
        workload_identity_tenant_id: str | None = None,
        interactive_browser_client_id: str | None = None,
        interactive_browser_tenant_id: str | None = None,
        process_timeout: float | None = None,
        require_envvar: bool = False,
        env: Mapping[str, str] | None = None,
        entropy: Callable[[int], bytes] | None = None,
        platform: str | None = None,
    ) -> None:
        # Accepted for drop-in compatibility; azid has none of these credentials (§0, §6.2).
        del exclude_shared_token_cache_credential, exclude_visual_studio_code_credential
        del exclude_broker_credential, interactive_browser_client_id, interactive_browser_tenant_id
        environment = host_environ() if env is None else env
        value, kept = _token_credentials(environment, require_envvar)
        flags = {
            "exclude_environment_credential": exclude_environment_credential,
            "exclude_workload_identity_credential": exclude_workload_identity_credential,
            "exclude_managed_identity_credential": exclude_managed_identity_credential,
            "exclude_cli_credential": exclude_cli_credential,
            "exclude_powershell_credential": exclude_powershell_credential,
            "exclude_developer_cli_credential": exclude_developer_cli_credential,
            "exclude_interactive_browser_credential": exclude_interactive_browser_credential,
        }
        # Why each member is left out: an explicit flag wins over AZURE_TOKEN_CREDENTIALS (§6.2).
        self._excluded: dict[str, str] = {}
        for key, _, flag in _MEMBERS:
            given = flags[flag]
            if given is not None:
                if given:
                    self._excluded[key] = f"{flag}=True"
            elif kept is not None:
                if key not in kept:
                    self._excluded[key] = f"{TOKEN_CREDENTIALS}={value}"
            elif key == "interactive_browser":
                self._excluded[key] = f"{flag} defaults to True"
        only_mi = value == "managedidentitycredential"
        entra: dict[str, Any] = {
            "authority": authority,
            "request_timeout": request_timeout,
            "env": environment,
        }
        tools: dict[str, Any] = {"process_timeout": process_timeout, "env": environment, "platform": platform}
        # WorkloadIdentity's client id defaults to managed_identity_client_id, then AZURE_CLIENT_ID.
        mi_client = None if managed_identity_client_id is _UNSET else managed_identity_client_id
        members: list[TokenSource] = []
        for key, class_name, _ in _MEMBERS:
            if key in self._excluded:
                continue
            if key == "environment":
                from .entra.environment import EnvironmentCredential

                members.append(EnvironmentCredential(entropy=entropy, **entra))
            elif key == "workload_identity":
                members.append(
                    _workload_member(
                        environment,
                        client_id=workload_identity_client_id or mi_client,
                        tenant_id=workload_identity_tenant_id,
                        authority=authority,
                        request_timeout=request_timeout,
                        entropy=entropy,
                    )
                )
            elif key == "managed_identity":
                members.append(
                    _managed_identity_member(
                        environment,
                        client_id=managed_identity_client_id,
                        request_timeout=request_timeout,
                        workload_identity="workload_identity" not in self._excluded and not only_mi,
                        probe=False if only_mi else None,
                        entropy=entropy,
                        platform=platform,
                    )
                )
            elif key == "cli":
                from .devtools.az import AzureCliCredential

                members.append(AzureCliCredential(**tools))
            elif key == "powershell":
                from .devtools.pwsh import AzurePowerShellCredential

                members.append(AzurePowerShellCredential(**tools))
            elif key == "developer_cli":
                from .devtools.azd import AzureDeveloperCliCredential

                members.append(AzureDeveloperCliCredential(**tools))
            else:
                members.append(
                    _Placeholder(class_name, "azid has no interactive browser sign-in yet (PROTOCOL.md §3.2)")
                )
        if not members:
            raise ConfigError(
                "DefaultAzureCredential: every credential is excluded: "
                + ", ".join(self._excluded[key] for key, _, _ in _MEMBERS)
            )
        super().__init__(*members)

    def explain(self) -> Explanation:
        """All seven members of §6.2 in order: the ones left out say which option or value did it."""
        built = iter(super().explain())
        return Explanation(
            MemberReport(class_name, False, False, self._excluded[key])
            if key in self._excluded
            else next(built)
            for key, class_name, _ in _MEMBERS
        )


def _managed_identity_member(
    env: Mapping[str, str],
    *,
    client_id: str | None,
    request_timeout: float | None,
    workload_identity: bool,
    probe: bool | None,
    entropy: Callable[[int], bytes] | None,
    platform: str | None,
) -> TokenSource:
    """ManagedIdentityCredential for DAC: AZURE_CLIENT_ID is only inherited (sources without
    user-assigned identities drop it); an explicit None means system-assigned (§6.2)."""
    from .managed_identity.credential import ManagedIdentityCredential

    options: dict[str, Any] = {
        "request_timeout": request_timeout,
        "imds_probe": probe,
        "env": env,
        "entropy": entropy,
        "platform": platform,
    }
    if client_id is _UNSET:
        options["_inherited_client_id"] = env.get("AZURE_CLIENT_ID") or None
    else:
        options["client_id"] = client_id
    try:
        return ManagedIdentityCredential(_workload_identity=workload_identity, **options)
    except ConfigError as exc:
        if not workload_identity:
            raise
        # Only the workload branch (§4.1 row 6) lacks something, a client id: here, not an error.
        ManagedIdentityCredential(_workload_identity=False, **options)
        return _Placeholder("ManagedIdentityCredential", exc.message.partition(": ")[2])


class DeveloperToolsCredential(ChainedTokenCredential):
    """Azure CLI, then Azure Developer CLI (§6.2); every error falls through to the next.

    >>> core = DeveloperToolsCredential(tenant_id="contoso.onmicrosoft.com")
    """

    def __init__(
        self,
        *,
        tenant_id: str = "",
        process_timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        platform: str | None = None,
    ) -> None:
        from .devtools.az import AzureCliCredential
        from .devtools.azd import AzureDeveloperCliCredential

        environment = host_environ() if env is None else env
        options: dict[str, Any] = {
            "tenant_id": tenant_id,
            "process_timeout": process_timeout,
            "env": environment,
            "platform": platform,
        }
        super().__init__(AzureCliCredential(**options), AzureDeveloperCliCredential(**options))
