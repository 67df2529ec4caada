"""`ManagedIdentityCredential`: which hosting source serves this workload (PROTOCOL.md §4.1), the
identity it asks for, and the rules every source shares on top of its own flow: the cache identity
(§7.1), the IMDS probe and the in-chain "refused means not here" rule with their memory (§4.5), the
Azure Arc agent check (§4.1 row 8) and the workload-identity branch (row 6).

It also makes a managed identity's token the assertion of a `ClientAssertionCredential`
(`ManagedIdentityCredential.assertion`), so the seed's federated example runs inside the core, with
both tokens cached.
"""

from __future__ import annotations

import functools
import math
import re
import sys
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from ..acquire import TokenCall, acquire_alone
from ..cache import Serve, TokenCache
from ..effects import FileContent, HttpRequest, ReadFile
from ..errors import ConfigError, CredentialUnavailableError, TransportError
from ..host import host_entropy, host_environ
from ..logs import debug
from ..options import check_scopes, merge_claims
from ..wire import host_and_port, new_request_id, user_agent

# Row 8, IMDS (with the Arc agent's look-up), serves every credential the environment says
# nothing to: these two modules are always needed.
from .arc import arc_flow, arc_source
from .common import OWNER, Selector, SourceCall, unreachable
from .imds import ImdsSource, imds_flow, imds_probe_flow, imds_source

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ..cache import CacheKey
    from ..effects import Flow, Reply, T
    from ..entra.federated import WorkloadIdentityCredential
    from ..tokens import AccessTokenInfo

__all__ = ["ManagedIdentityAssertion", "ManagedIdentityCredential"]

DEFAULT_REQUEST_TIMEOUT = 30.0  # §0.5: the attempt deadline
ARC_AGENT_ENDPOINT = "http://localhost:40342/metadata/identity/oauth2/token"  # §4.1 row 8
LINUX_ARC_AGENT = "/opt/azcmagent/bin/himds"
WINDOWS_ARC_AGENT = "AzureConnectedMachineAgent\\himds.exe"  # under %PROGRAMFILES%
_DEFAULT_SUFFIX = "/.default"
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+", re.ASCII)
# azure-identity's `identity_config` keys (for migration), and the selector kind each names.
_CONFIG_KEYS = {
    "client_id": "client_id",
    "object_id": "object_id",
    "resource_id": "resource_id",
    "mi_res_id": "resource_id",
    "msi_res_id": "resource_id",
}
_LABELS = {
    "imds": "IMDS",
    "app_service": "App Service",
    "arc": "Azure Arc",
    "azure_ml": "Azure ML",
    "cloud_shell": "Cloud Shell",
    "service_fabric": "Service Fabric",
    "workload_identity": "workload identity",
}


class _Failure(NamedTuple):
    """A remembered "not here" (§4.5): when (flow time), the source, how, and what failed."""

    at: float
    source: str
    kind: str
    what: str


@functools.cache
def _flows() -> dict[str, Callable[..., Flow[AccessTokenInfo]]]:
    """Each source's flow, `flow(source_record, call, now=now)`; the modules of the sources row 8
    does not need are imported when first needed, once."""
    from .app_service import app_service_flow
    from .azure_ml import azure_ml_flow
    from .cloud_shell import cloud_shell_flow
    from .service_fabric import service_fabric_flow

    return {
        "imds": imds_flow,
        "app_service": app_service_flow,
        "arc": arc_flow,
        "azure_ml": azure_ml_flow,
        "cloud_shell": cloud_shell_flow,
        "service_fabric": service_fabric_flow,
    }


def _selector(
    client_id: object, object_id: object, resource_id: object, identity_config: object
) -> Selector | None:
    """The one user-assigned identity the options name, or None (system-assigned)."""
    if client_id is None and object_id is None and resource_id is None and identity_config is None:
        return None
    named: list[tuple[str, str, object]] = [
        (option, option, value)
        for option, value in (
            ("client_id", client_id),
            ("object_id", object_id),
            ("resource_id", resource_id),
        )
        if value is not None
    ]
    if identity_config is not None:
        if not hasattr(identity_config, "items"):
            raise ConfigError(f"{OWNER}: identity_config is invalid: a mapping is required")
        for key, value in identity_config.items():
            if key not in _CONFIG_KEYS:
                raise ConfigError(
                    f"{OWNER}: identity_config is invalid: {key!r} is not one of {', '.join(_CONFIG_KEYS)}"
                )
            named.append((f"identity_config[{key!r}]", _CONFIG_KEYS[key], value))
    if len(named) > 1:
        raise ConfigError(
            f"{OWNER}: {named[1][0]} is invalid: give at most one of client_id, object_id and "
            f"resource_id (got {', '.join(option for option, _, _ in named)})"
        )
    if not named:
        return None
    option, kind, value = named[0]
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise ConfigError(f"{OWNER}: {option} is invalid: a non-empty string is required")
    return Selector(kind, value.strip())


def _endpoint(value: str, name: str, *, https: bool = False) -> str:
    """`value` if it is an absolute http(s) URL (https only, for Service Fabric); the message names
    the option or variable, not the value (it could carry user info)."""
    parts = urlsplit(value)
    try:
        host, port = host_and_port(parts)
        port_ok = port is None or port > 0
    except ValueError:
        host, port_ok = "", False
    schemes = ("https",) if https else ("http", "https")
    if parts.scheme.lower() not in schemes or not host or not port_ok:
        wanted = "an absolute https URL" if https else "an absolute http or https URL"
        raise ConfigError(f"{OWNER}: {name} is invalid: {wanted} is required")
    return value


def _header(value: str, variable: str) -> str:
    """A header value taken from the environment: printable ASCII, checked now (§0.4)."""
    if not _PRINTABLE_ASCII.fullmatch(value):
        raise ConfigError(f"{OWNER}: {variable} is invalid: only printable ASCII is allowed")
    return value


def _arc_agent_path(platform: str, env: Mapping[str, str]) -> str | None:
    """Where the Azure Arc agent is installed on `platform`, if it can be (§4.1 row 8)."""
    if platform == "win32":
        files = next((value for name, value in env.items() if name.upper() == "PROGRAMFILES" and value), None)
        return f"{files.rstrip(chr(92))}\\{WINDOWS_ARC_AGENT}" if files else None
    return LINUX_ARC_AGENT if platform.startswith("linux") else None


class _Detected(NamedTuple):
    """What §4.1 found: the source (None for row 7), its module's record, the secrets it holds, and
    for IMDS whether the endpoint was given and where the Arc agent would be (row 8)."""

    source: str | None
    record: object = None
    secrets: tuple[str, ...] = ()
    agent_path: str | None = None
    agent: object = None
    imds_overridden: bool = False
    missing: str | None = None


def _detect(
    env: Mapping[str, str],
    *,
    imds_endpoint: str | None,
    arc_key_directory: str | None,
    platform: str,
    workload_identity: bool,
) -> _Detected:
    """§4.1: the first row whose variables are all set (non-empty) decides."""

    def value(name: str) -> str:
        return env.get(name, "").strip()

    identity_endpoint, identity_header = value("IDENTITY_ENDPOINT"), value("IDENTITY_HEADER")
    msi_endpoint, msi_secret = value("MSI_ENDPOINT"), value("MSI_SECRET")
    if identity_endpoint and identity_header and value("IDENTITY_SERVER_THUMBPRINT"):
        from .service_fabric import service_fabric_source

        endpoint = _endpoint(identity_endpoint, "IDENTITY_ENDPOINT", https=True)
        header = _header(identity_header, "IDENTITY_HEADER")
        record = service_fabric_source(endpoint, header, value("IDENTITY_SERVER_THUMBPRINT"))
        return _Detected("service_fabric", record, (header,))
    if identity_endpoint and identity_header:
        from .app_service import AppServiceSource

        endpoint = _endpoint(identity_endpoint, "IDENTITY_ENDPOINT")
        header = _header(identity_header, "IDENTITY_HEADER")
        return _Detected("app_service", AppServiceSource(endpoint, header), (header,))
    if identity_endpoint and value("IMDS_ENDPOINT"):
        endpoint = _endpoint(identity_endpoint, "IDENTITY_ENDPOINT")
        return _Detected(
            "arc", arc_source(endpoint, key_directory=arc_key_directory, platform=platform, env=env)
        )
    if msi_endpoint and msi_secret:
        from .azure_ml import AzureMLSource

        secret = _header(msi_secret, "MSI_SECRET")
        return _Detected(
            "azure_ml", AzureMLSource(_endpoint(msi_endpoint, "MSI_ENDPOINT"), secret), (secret,)
        )
    if msi_endpoint:
        from .cloud_shell import CloudShellSource

        return _Detected("cloud_shell", CloudShellSource(_endpoint(msi_endpoint, "MSI_ENDPOINT")))
    workload = all(
        value(name) for name in ("AZURE_AUTHORITY_HOST", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE")
    )
    if workload_identity and workload:
        return _Detected("workload_identity")
    if identity_endpoint:
        # Row 7: half of a pair. It is reported at get_token, so a chain moves on.
        return _Detected(
            None,
            missing="IDENTITY_ENDPOINT is set but neither IDENTITY_HEADER (App Service, Service Fabric) "
            "nor IMDS_ENDPOINT (Azure Arc) is",
        )
    return _detect_imds(
        env, imds_endpoint=imds_endpoint, arc_key_directory=arc_key_directory, platform=platform
    )


def _detect_imds(
    env: Mapping[str, str], *, imds_endpoint: str | None, arc_key_directory: str | None, platform: str
) -> _Detected:
    """Row 8: IMDS at `imds_endpoint`, else AZURE_POD_IDENTITY_AUTHORITY_HOST, else the default;
    with the default, the Arc agent is looked for at the first request."""
    option = imds_endpoint is not None
    name = "imds_endpoint" if option else "AZURE_POD_IDENTITY_AUTHORITY_HOST"
    base = (imds_endpoint if option else env.get(name, "")) or ""
    if not isinstance(base, str) or (option and not base.strip()):
        raise ConfigError(f"{OWNER}: imds_endpoint is invalid: an absolute http or https URL is required")
    if base.strip():
        # An endpoint given explicitly declares that IMDS is there: no look for the Arc agent.
        base = _endpoint(base.strip().rstrip("/"), name)
        return _Detected("imds", imds_source(base), imds_overridden=True)
    agent = arc_source(ARC_AGENT_ENDPOINT, key_directory=arc_key_directory, platform=platform, env=env)
    return _Detected("imds", imds_source(None), agent_path=_arc_agent_path(platform, env), agent=agent)


class ManagedIdentityCredential:
    """The managed identity of the Azure resource this code runs on (§4).

    The source is detected from the environment at construction (`source`); no I/O happens until
    the first token request. At most one of `client_id`, `object_id`, `resource_id` (or
    azure-identity's `identity_config={"client_id": ...}`, `{"mi_res_id": ...}`, ...) names a
    user-assigned identity; none means the system-assigned one.

    For DefaultAzureCredential only: `_inherited_client_id` is a client id taken from
    AZURE_CLIENT_ID rather than given by the user (an explicit selector wins over it; sources
    without user-assigned identities drop it with a DEBUG record instead of failing), and
    `_workload_identity=False` skips the workload-identity branch (§4.1 row 6) when the chain has
    a member of its own for it. DAC limited to this credential passes `imds_probe=False` (§4.5).

    >>> core = ManagedIdentityCredential(client_id="00000000-0000-0000-0000-000000000001")
    """

    _cache: TokenCache
    _failure: _Failure | None
    _probed: bool
    _agent_checked: bool
    _agent_found: bool

    def __init__(
        self,
        *,
        client_id: str | None = None,
        object_id: str | None = None,
        resource_id: str | None = None,
        identity_config: Mapping[str, str] | None = None,
        imds_endpoint: str | None = None,
        imds_probe: bool | None = None,
        imds_probe_ttl: float = 60,
        arc_key_directory: str | None = None,
        request_timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        entropy: Callable[[int], bytes] | None = None,
        platform: str | None = None,
        _inherited_client_id: str | None = None,
        _workload_identity: bool = True,
    ) -> None:
        environment = host_environ() if env is None else env
        explicit = _selector(client_id, object_id, resource_id, identity_config)
        inherited = _selector(_inherited_client_id, None, None, None)
        timeout = DEFAULT_REQUEST_TIMEOUT if request_timeout is None else request_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < 3600:
            raise ConfigError(
                f"{OWNER}: request_timeout is invalid: a number of seconds above 0 and below 3600"
            )
        if imds_probe is not None and not isinstance(imds_probe, bool):
            raise ConfigError(f"{OWNER}: imds_probe is invalid: None, True or False is required")
        ttl = imds_probe_ttl
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 <= ttl < math.inf:
            raise ConfigError(f"{OWNER}: imds_probe_ttl is invalid: a number of seconds of at least 0")
        self._request_timeout = float(timeout)
        self._probe_option = imds_probe
        self._probe_ttl = float(ttl)
        self._platform = sys.platform if platform is None else platform
        self._user_agent = user_agent(environment, owner=OWNER, platform=self._platform)
        self._entropy = entropy
        self._workload: WorkloadIdentityCredential | None = None
        found = _detect(
            environment,
            imds_endpoint=imds_endpoint,
            arc_key_directory=arc_key_directory,
            platform=self._platform,
            workload_identity=_workload_identity,
        )
        self._source, self._record, self._secrets = found.source, found.record, found.secrets
        self._agent_path, self._agent = found.agent_path, found.agent
        self._imds_overridden, self._missing = found.imds_overridden, found.missing
        self._selector = self._choose(explicit, inherited)
        if self._source == "workload_identity":
            self._workload = self._workload_credential(environment)
            self._selector = Selector("client_id", self._workload._client_id)
        self._reset_transient()

    def _choose(self, explicit: Selector | None, inherited: Selector | None) -> Selector | None:
        """The selector this source gets: Service Fabric and Cloud Shell have none (an explicit one
        is an error, DAC's AZURE_CLIENT_ID is dropped); the workload branch takes only a client id."""
        if self._source in ("service_fabric", "cloud_shell"):
            label = _LABELS[self._source]
            if explicit is not None:
                raise ConfigError(
                    f"{OWNER}: {explicit.kind} is invalid: {label} has no user-assigned identities"
                )
            if inherited is not None:
                debug(
                    "managed_identity",
                    "%s: AZURE_CLIENT_ID is ignored: %s has no user-assigned identities",
                    OWNER,
                    label,
                )
            return None
        if self._source == "workload_identity" and explicit is not None and explicit.kind != "client_id":
            raise ConfigError(
                f"{OWNER}: {explicit.kind} is invalid: the workload identity branch takes only client_id"
            )
        return explicit if explicit is not None else inherited

    def _workload_credential(self, environment: Mapping[str, str]) -> WorkloadIdentityCredential:
        """Row 6: the Kubernetes workload identity, for the MI client id or AZURE_CLIENT_ID."""
        from ..entra.federated import WorkloadIdentityCredential

        client = (
            self._selector.value if self._selector is not None else environment.get("AZURE_CLIENT_ID", "")
        )
        if not client.strip():
            raise ConfigError(
                f"{OWNER}: client_id is invalid: the workload identity branch needs client_id or "
                "AZURE_CLIENT_ID"
            )
        return WorkloadIdentityCredential(
            client_id=client.strip(),
            request_timeout=self._request_timeout,
            env=environment,
            entropy=self._entropy,
        )

    # -- what this credential is --

    @property
    def source(self) -> str | None:
        """The detected source: `imds`, `app_service`, `arc`, `azure_ml`, `cloud_shell`,
        `service_fabric` or `workload_identity`; None when the environment is incomplete (§4.1
        row 7). IMDS becomes `arc` once the first request found the Arc agent installed."""
        return "arc" if self._agent_found else self._source

    @property
    def _identity(self) -> str:
        """§7.1; fixed at construction, so the Arc agent check does not split the cache."""
        selector = f"{self._selector.kind}={self._selector.value}" if self._selector is not None else "system"
        return f"mi:{self._source or 'unavailable'}:{selector}"

    @property
    def entropy(self) -> Callable[[int], bytes]:
        return self._entropy or host_entropy()

    def __repr__(self) -> str:
        selector = f", {self._selector.kind}={self._selector.value!r}" if self._selector is not None else ""
        return f"{OWNER}(source={self.source!r}{selector})"

    def assertion(self, scope: str) -> ManagedIdentityAssertion:
        """This identity's token for `scope` as a client assertion: pass the result as
        `ClientAssertionCredential(tenant_id, client_id, func=...)` (the seed's federated example,
        with scope `api://AzureADTokenExchange/.default`). The token is cached here."""
        return ManagedIdentityAssertion(self, scope)

    # -- what acquire_flow needs (the TokenSource protocol) --

    @property
    def token_cache(self) -> TokenCache:
        return self._cache

    def cache_key(self, call: TokenCall) -> CacheKey:
        """One scope, checked; tenant and CAE do not apply to managed identities (§4, §7.1)."""
        scopes = check_scopes(call.scopes, owner=OWNER)
        if len(scopes) != 1:
            raise ConfigError(f"{OWNER}: scopes is invalid: exactly one scope is required, not {len(scopes)}")
        merge_claims(call.claims, enable_cae=False, owner=OWNER)  # a bad value fails before any I/O
        return ((scopes[0],), "", False, self._identity)

    def fetch_flow(self, call: TokenCall, key: CacheKey, now: float) -> Flow[AccessTokenInfo]:
        """Ask the source for a token, with the probe and in-chain rules of §4.5.

        Yields:  the source's effects; first, once, a ReadFile looking for the Arc agent (row 8).
        Raises:  CredentialUnavailableError at once, without any effect, while a failed probe or
                 refused connection is remembered, and for an incomplete environment (row 7).
        """
        self._check_memory(now)
        if self._source is None:
            raise CredentialUnavailableError(f"{OWNER}: {self._missing}")
        if self._workload is not None:
            inner = TokenCall(call.scopes, call.claims, None, False, call.in_chain)
            flow = self._workload.fetch_flow(inner, self._workload.cache_key(inner), now)
            return (yield from self._guarded(flow, call, "workload_identity", now))
        source, record = self._source, self._record
        if self._agent_path is not None and (yield from self._arc_agent_installed()):
            source, record = "arc", self._agent
        resource = call.scopes[0]
        if resource.endswith(_DEFAULT_SUFFIX):
            resource = resource[: -len(_DEFAULT_SUFFIX)]
        cached = None
        if call.claims:
            plan = self._cache.plan(key, now, None)
            entry = plan.entry if isinstance(plan, Serve) else plan.fallback
            cached = entry.info.token if entry is not None else None
        source_call = SourceCall(
            resource=resource,
            selector=self._selector,
            claims=call.claims or None,
            cached_token=cached,
            in_chain=call.in_chain,
            user_agent=self._user_agent,
            request_id=new_request_id(self.entropy),
            timeout=self._request_timeout,
        )
        probed = False
        if source == "imds" and self._probe_wanted(call):
            yield from self._probe(source_call, now)
            probed = True
        flow = _flows()[source](record, source_call, now=now)
        if probed:  # the probe was the first request, and something answered it
            return (yield from flow)
        return (yield from self._guarded(flow, call, source, now))

    # -- §4.5: the probe, the in-chain rule, and what they remember --

    def _probe_wanted(self, call: TokenCall) -> bool:
        if self._probed or self._probe_option is False:
            return False
        return self._probe_option is True or (call.in_chain and not self._imds_overridden)

    def _probe(self, call: SourceCall, now: float) -> Flow[None]:
        assert isinstance(self._record, ImdsSource)
        failed = yield from imds_probe_flow(self._record, call)
        if failed is not None:
            self._failure = _Failure(now, "imds", failed.kind, "the IMDS probe failed")
            raise failed.error
        self._probed = True  # IMDS is here: no probe again for this object's lifetime

    def _check_memory(self, now: float) -> None:
        failure = self._failure
        if failure is None:
            return
        elapsed = now - failure.at
        if elapsed >= self._probe_ttl:
            self._failure = None
            return
        raise CredentialUnavailableError(
            f"{OWNER} ({failure.source}): {failure.what} {int(elapsed)} s ago ({failure.kind}); "
            f"next try in {math.ceil(self._probe_ttl - elapsed)} s"
        )

    def _guarded(self, flow: Flow[T], call: TokenCall, source: str, now: float) -> Flow[T]:
        """`flow`, except that in a chain a refused connection on its first request means nothing
        listens there: CredentialUnavailableError at once, no retries, remembered like a failed
        probe (§4.5, last paragraph). Standalone, `flow` runs as it is."""
        if not call.in_chain:
            return (yield from flow)
        first = True
        reply: Reply = None
        error: TransportError | None = None
        try:
            while True:
                try:
                    effect = flow.throw(error) if error is not None else flow.send(reply)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                reply, error = None, None
                try:
                    reply = yield effect
                except TransportError as exc:
                    if first and isinstance(effect, HttpRequest) and exc.kind == "connect":
                        self._failure = _Failure(now, source, "connect", "the endpoint refused a connection")
                        raise unreachable(source, effect.url, exc, self._secrets) from exc
                    error = exc
                first = first and not isinstance(effect, HttpRequest)
        finally:
            flow.close()

    def _arc_agent_installed(self) -> Flow[bool]:
        """Row 8: whether the Azure Arc agent is installed; looked for once per object (§7.4)."""
        if not self._agent_checked:
            assert self._agent_path is not None
            try:
                reply = yield ReadFile(self._agent_path, max_bytes=0)
            except TransportError:
                reply = None  # not there (or not a file we can open): this is not an Arc machine
            self._agent_found = isinstance(reply, FileContent)
            self._agent_checked = True
            if self._agent_found:
                debug("managed_identity", "%s: the Azure Arc agent is installed; using it", OWNER)
        return self._agent_found

    # -- pickling: configuration only --

    #: Rebuilt lazily, never pickled (§7.4): the cache, probe memory, the Arc agent check.
    _transient = ("_cache", "_failure", "_probed", "_agent_checked", "_agent_found")

    def _reset_transient(self) -> None:
        self._cache = TokenCache()
        self._failure = None
        self._probed = False
        self._agent_checked = False
        self._agent_found = False

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in self._transient:
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_transient()


class ManagedIdentityAssertion:
    """A managed identity's token for one scope, as a client assertion (§2.1; the seed's federated
    example): `ClientAssertionCredential` accepts it as `func` and runs `assertion_flow` inside its
    own token request, so no callback is involved and the managed-identity token is cached (and
    refreshed) by the managed-identity credential.
    """

    __slots__ = ("_credential", "_scope")

    def __init__(self, credential: ManagedIdentityCredential, scope: str) -> None:
        credential.cache_key(TokenCall((scope,), None, None, False))  # a bad scope fails now
        self._credential = credential
        self._scope = scope

    def __repr__(self) -> str:
        return f"ManagedIdentityAssertion({self._credential!r}, scope={self._scope!r})"

    def __getstate__(self) -> tuple[ManagedIdentityCredential, str]:
        return self._credential, self._scope

    def __setstate__(self, state: tuple[ManagedIdentityCredential, str]) -> None:
        self._credential, self._scope = state

    def assertion_flow(self, now: float) -> Flow[str]:
        """The cached managed-identity token, or a new one (§7.2's rules, fallback included).

        Yields:  the managed-identity source's effects on a cache miss.
        Returns: the token.
        Raises:  what the managed-identity credential raises.
        """
        call = TokenCall((self._scope,), None, None, False)
        info = yield from acquire_alone(self._credential, call, now)
        return info.token
