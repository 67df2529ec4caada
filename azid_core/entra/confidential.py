"""Confidential-client credentials: an application proving itself to Entra ID (PROTOCOL.md §2).

A core credential is pure configuration plus its token cache: constructing one does no I/O, and it
pickles without its cache (a fresh, empty one comes back). Adapters wrap it to get tokens.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, NamedTuple

from ..cache import TokenCache
from ..errors import ConfigError
from ..host import host_entropy, host_environ
from ..options import check_scopes, merge_claims
from ..wire import user_agent
from .adfs import adfs_token_endpoint
from .authority import check_tenant_id, normalize_authority, resolve_tenant, token_url
from .endpoint import EntraRequest, token_request_flow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ..acquire import TokenCall
    from ..cache import CacheKey
    from ..effects import Flow
    from ..tokens import AccessTokenInfo

__all__ = ["ClientSecretCredential", "EntraCredential", "EntraForm", "check_id"]

DEFAULT_REQUEST_TIMEOUT = 30.0  # §0.5: the attempt deadline


def check_id(value: object, name: str, owner: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{owner}: {name} is invalid: a non-empty string is required")
    return value


class EntraForm(NamedTuple):
    """A token request's form fields in wire order, and the verbatim secrets they carry (to mask)."""

    fields: list[tuple[str, str]]
    secrets: tuple[str, ...]


class EntraCredential(ABC):
    """What every Entra credential shares: tenant, client, authority, options, cache (§2.1)."""

    _cache: TokenCache
    _adfs_endpoint: str | None

    _identity_prefix = "entra"

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        *,
        authority: str | None = None,
        additionally_allowed_tenants: Iterable[str] = (),
        request_timeout: float | None = None,
        disable_instance_discovery: bool = False,
        env: Mapping[str, str] | None = None,
        entropy: Callable[[int], bytes] | None = None,
    ) -> None:
        owner = type(self).__name__
        environment = host_environ() if env is None else env
        self._tenant_id = check_tenant_id(tenant_id, owner=owner)
        self._client_id = check_id(client_id, "client_id", owner)
        self._authority = normalize_authority(authority, environment, owner=owner)
        if isinstance(additionally_allowed_tenants, str):
            raise ConfigError(
                f"{owner}: additionally_allowed_tenants is invalid: a list of tenant IDs is required"
            )
        self._allowed_tenants = (
            tuple(
                t if t == "*" else check_tenant_id(t, owner=owner, name="additionally_allowed_tenants")
                for t in additionally_allowed_tenants
            )
            if additionally_allowed_tenants
            else ()
        )
        timeout = DEFAULT_REQUEST_TIMEOUT if request_timeout is None else request_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < 3600:
            raise ConfigError(
                f"{owner}: request_timeout is invalid: a number of seconds above 0 and below 3600"
            )
        self._request_timeout = float(timeout)
        # Instance discovery is not done at all (§0.4); the option exists for drop-in compatibility.
        self._disable_instance_discovery = disable_instance_discovery
        self._multitenant_disabled = bool(environment.get("AZURE_IDENTITY_DISABLE_MULTITENANTAUTH"))
        self._user_agent = user_agent(environment, owner=owner)
        self._entropy = entropy
        self._reset_transient()

    # -- what acquire_flow needs (the TokenSource protocol) --

    @property
    def token_cache(self) -> TokenCache:
        return self._cache

    @property
    def _identity(self) -> str:
        return f"{self._identity_prefix}:{self._authority}:{self._client_id}"

    def cache_key(self, call: TokenCall) -> CacheKey:
        owner = type(self).__name__
        scopes = check_scopes(call.scopes, owner=owner)
        tenant = resolve_tenant(
            self._tenant_id,
            call.tenant_id,
            allowed=self._allowed_tenants,
            multitenant_disabled=self._multitenant_disabled,
            owner=owner,
        )
        merge_claims(call.claims, enable_cae=call.enable_cae, owner=owner)  # a bad value fails before any I/O
        # One scope (the usual call) is its own canonical form.
        canonical = scopes if len(scopes) == 1 else tuple(sorted(set(scopes)))
        return (canonical, tenant, call.enable_cae, self._identity)

    def fetch_flow(self, call: TokenCall, key: CacheKey, now: float) -> Flow[AccessTokenInfo]:
        owner = type(self).__name__
        claims = merge_claims(call.claims, enable_cae=call.enable_cae, owner=owner)
        url = yield from self._token_endpoint(key[1], now)
        form = yield from self._form(" ".join(call.scopes), claims, url, now)
        request = EntraRequest(
            owner=owner,
            url=url,
            fields=form.fields,
            secrets=form.secrets,
            user_agent=self._user_agent,
            timeout=self._request_timeout,
        )
        return (yield from token_request_flow(request, now=now, entropy=self.entropy))

    @property
    def entropy(self) -> Callable[[int], bytes]:
        return self._entropy or host_entropy()

    def _token_endpoint(self, tenant: str, now: float) -> Flow[str]:
        """Where the token request goes: the v2.0 endpoint, or ADFS's discovered one (§1.2)."""
        if tenant.lower() != "adfs":
            return token_url(self._authority, tenant)
        if self._adfs_endpoint is None:
            endpoint = yield from adfs_token_endpoint(
                self._authority,
                owner=type(self).__name__,
                user_agent=self._user_agent,
                timeout=self._request_timeout,
                now=now,
                entropy=self.entropy,
            )
            self._adfs_endpoint = endpoint
        return self._adfs_endpoint

    # -- what a grant defines --

    @abstractmethod
    def _form(self, scope: str, claims: str | None, url: str, now: float) -> Flow[EntraForm]:
        """The token request's form fields in wire order (§2), and the secrets they carry."""

    # -- pickling: configuration only --

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in self._transient:
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_transient()

    #: State rebuilt lazily, never pickled (§7.4): the cache and what was learnt from services.
    _transient: tuple[str, ...] = ("_cache", "_adfs_endpoint")

    def _reset_transient(self) -> None:
        self._cache = TokenCache()
        self._adfs_endpoint = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(tenant_id={self._tenant_id!r}, client_id={self._client_id!r}, "
            f"authority={self._authority!r})"
        )


class ClientSecretCredential(EntraCredential):
    """An application authenticating with a client secret (§2, grant "secret").

    >>> core = ClientSecretCredential(tenant_id, client_id, client_secret)
    """

    _identity_prefix = "secret"

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        *,
        authority: str | None = None,
        additionally_allowed_tenants: Iterable[str] = (),
        request_timeout: float | None = None,
        disable_instance_discovery: bool = False,
        env: Mapping[str, str] | None = None,
        entropy: Callable[[int], bytes] | None = None,
    ) -> None:
        super().__init__(
            tenant_id,
            client_id,
            authority=authority,
            additionally_allowed_tenants=additionally_allowed_tenants,
            request_timeout=request_timeout,
            disable_instance_discovery=disable_instance_discovery,
            env=env,
            entropy=entropy,
        )
        if not isinstance(client_secret, str) or not client_secret:
            raise ConfigError(
                "ClientSecretCredential: client_secret is invalid: a non-empty string is required"
            )
        self._client_secret = client_secret

    def _form(self, scope: str, claims: str | None, url: str, now: float) -> Flow[EntraForm]:
        yield from ()  # no effects: the secret is at hand
        fields = [
            ("client_id", self._client_id),
            ("grant_type", "client_credentials"),
            ("client_info", "1"),
            ("client_secret", self._client_secret),
            ("scope", scope),
        ]
        if claims:
            fields.append(("claims", claims))
        return EntraForm(fields, (self._client_secret,))
