"""`EnvironmentCredential`: a service principal or user configured by environment variables
(PROTOCOL.md §2.5, §9).

At construction it reads the variables once and builds the credential the first complete group
names (secret, certificate, username/password); every call then goes to that credential. Without a
complete group, every call is unavailable, saying which names are set and which are missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from ..cache import TokenCache
from ..errors import ConfigError, CredentialUnavailableError
from ..host import host_environ
from .certificate import CertificateCredential
from .confidential import ClientSecretCredential, EntraCredential
from .password import UsernamePasswordCredential

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ..acquire import TokenCall
    from ..cache import CacheKey
    from ..effects import Flow
    from ..tokens import AccessTokenInfo

__all__ = ["EnvironmentCredential"]


class _Options(TypedDict):
    """The options every inner credential takes."""

    authority: str | None
    additionally_allowed_tenants: Iterable[str]
    request_timeout: float | None
    disable_instance_discovery: bool
    env: Mapping[str, str]
    entropy: Callable[[int], bytes] | None


_OWNER = "EnvironmentCredential"
TENANT, CLIENT, SECRET = "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"
CERTIFICATE, CERTIFICATE_PASSWORD = "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD"
SEND_CHAIN = "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN"
USERNAME, PASSWORD = "AZURE_USERNAME", "AZURE_PASSWORD"
# §2.5, in precedence order: the first group whose variables are all non-empty wins.
GROUPS = ((TENANT, CLIENT, SECRET), (TENANT, CLIENT, CERTIFICATE), (CLIENT, USERNAME, PASSWORD))
NAMES = (TENANT, CLIENT, SECRET, CERTIFICATE, USERNAME, PASSWORD)
# The inner credential's option names, as the variables that set them (for ConfigError messages).
_OPTIONS = {
    "tenant_id": TENANT,
    "client_id": CLIENT,
    "client_secret": SECRET,
    "certificate_path": CERTIFICATE,
    "password": PASSWORD,
    "username": USERNAME,
}


class EnvironmentCredential:
    """The credential `AZURE_*` variables describe (§2.5); a TokenSource delegating to it.

    >>> core = EnvironmentCredential()            # reads os.environ once, now
    >>> core = EnvironmentCredential(env={...})   # or a given mapping
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        authority: str | None = None,
        additionally_allowed_tenants: Iterable[str] = (),
        request_timeout: float | None = None,
        disable_instance_discovery: bool = False,
        entropy: Callable[[int], bytes] | None = None,
    ) -> None:
        environment = host_environ() if env is None else env
        # §2.5 and §10 item 18: a variable counts only when non-empty.
        values = {name: environment.get(name) or "" for name in (*NAMES, CERTIFICATE_PASSWORD, SEND_CHAIN)}
        self._set = tuple(name for name in NAMES if values[name])
        group = next((g for g in GROUPS if all(values[name] for name in g)), None)
        self._inner: EntraCredential | None = None
        self._unavailable_cache = TokenCache()  # stable, and always empty: nothing is ever fetched
        if group is None:
            return
        common: _Options = {
            "authority": authority,
            "additionally_allowed_tenants": additionally_allowed_tenants,
            "request_timeout": request_timeout,
            "disable_instance_discovery": disable_instance_discovery,
            "env": environment,
            "entropy": entropy,
        }
        try:
            if group[2] == SECRET:
                self._inner = ClientSecretCredential(values[TENANT], values[CLIENT], values[SECRET], **common)
            elif group[2] == CERTIFICATE:
                self._inner = CertificateCredential(
                    values[TENANT],
                    values[CLIENT],
                    values[CERTIFICATE],
                    password=values[CERTIFICATE_PASSWORD] or None,
                    # §10 item 4: only `1` or `true` turn the chain on ("false" does not).
                    send_certificate_chain=values[SEND_CHAIN].strip().lower() in ("1", "true"),
                    **common,
                )
            else:
                self._inner = UsernamePasswordCredential(
                    values[CLIENT],
                    values[USERNAME],
                    values[PASSWORD],
                    tenant_id=values[TENANT] or "organizations",
                    **common,
                )
        except ConfigError as exc:
            raise _renamed(exc) from exc

    # -- the TokenSource protocol, delegated --

    @property
    def token_cache(self) -> TokenCache:
        return self._unavailable_cache if self._inner is None else self._inner.token_cache

    def cache_key(self, call: TokenCall) -> CacheKey:
        return self._available().cache_key(call)

    def fetch_flow(self, call: TokenCall, key: CacheKey, now: float) -> Flow[AccessTokenInfo]:
        return self._available().fetch_flow(call, key, now)

    def _available(self) -> EntraCredential:
        if self._inner is None:
            missing = [name for name in NAMES if name not in self._set]
            raise CredentialUnavailableError(
                f"{_OWNER}: the environment configures no credential (set: {', '.join(self._set) or 'none'}; "
                f"missing: {', '.join(missing)}). Set {TENANT}, {CLIENT} and {SECRET} or {CERTIFICATE}; "
                f"or {CLIENT}, {USERNAME} and {PASSWORD}"
            )
        return self._inner

    def __repr__(self) -> str:
        inner = repr(self._inner) if self._inner is not None else "unavailable"
        return f"{_OWNER}({inner})"


def _renamed(error: ConfigError) -> ConfigError:
    """The inner credential's ConfigError, as ours: `EnvironmentCredential: AZURE_X is invalid: ...`."""
    _, _, rest = error.message.partition(": ")
    option, _, tail = rest.partition(" is invalid")
    name = _OPTIONS.get(option, option)
    return ConfigError(f"{_OWNER}: {name} is invalid{tail}")
