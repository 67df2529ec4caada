"""The on-behalf-of grant: a middle-tier API trading its caller's token for one of its own
(PROTOCOL.md §2, §2.1, §3.3, §7.1).

`OnBehalfOfCredential` owns the OBO form, its client authentication (secret, certificate or an
assertion function) and the refresh token Entra returns with a delegated token: kept in memory per
(identity, tenant), tried first on the next cache miss, dropped on `invalid_grant`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import AuthError, ConfigError
from ..logs import debug
from ..options import merge_claims
from .assertion import JWT_BEARER, assertion_from
from .certificate import CertificateSigner
from .confidential import EntraCredential, EntraForm
from .endpoint import EntraRequest, token_reply_flow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ..acquire import TokenCall
    from ..cache import CacheKey
    from ..effects import Flow
    from ..tokens import AccessTokenInfo

__all__ = ["OnBehalfOfCredential"]

OBO_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# §2: azure-identity's sync path appends these to every OBO (and so refresh) scope.
EXTRA_SCOPES = " offline_access openid profile"
_OWNER = "OnBehalfOfCredential"


class OnBehalfOfCredential(EntraCredential):
    """A service acting for the user whose token (`user_assertion`) it received (§2, "on-behalf-of").

    >>> core = OnBehalfOfCredential(tenant_id, client_id, user_assertion=token, client_secret=secret)

    Exactly one client authentication: `client_secret`, `client_certificate` (PEM or PKCS#12 bytes,
    with `password`; parsed at the first token request) or `client_assertion_func` (called on each
    token request, through the FunctionCall effect).
    """

    _refresh_tokens: dict[tuple[str, str], str]

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        *,
        user_assertion: str,
        client_secret: str | None = None,
        client_certificate: bytes | None = None,
        password: str | bytes | None = None,
        client_assertion_func: Callable[[], Any] | None = None,
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
        if not isinstance(user_assertion, str) or not user_assertion:
            raise ConfigError(f"{_OWNER}: user_assertion is invalid: a non-empty string is required")
        given = [
            name
            for name, value in (
                ("client_secret", client_secret),
                ("client_certificate", client_certificate),
                ("client_assertion_func", client_assertion_func),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise ConfigError(
                f"{_OWNER}: client authentication is invalid: give exactly one of client_secret, "
                f"client_certificate or client_assertion_func ({', '.join(given) or 'none'} given)"
            )
        if client_secret is not None and (not isinstance(client_secret, str) or not client_secret):
            raise ConfigError(f"{_OWNER}: client_secret is invalid: a non-empty string is required")
        if client_certificate is not None and (
            not isinstance(client_certificate, (bytes, bytearray)) or not client_certificate
        ):
            raise ConfigError(
                f"{_OWNER}: client_certificate is invalid: non-empty certificate bytes are required"
            )
        if client_assertion_func is not None and not callable(client_assertion_func):
            raise ConfigError(f"{_OWNER}: client_assertion_func is invalid: a callable is required")
        if password is not None and (client_certificate is None or not isinstance(password, (str, bytes))):
            raise ConfigError(
                f"{_OWNER}: password is invalid: a str or bytes, and only with client_certificate"
            )
        import hashlib

        self._user_assertion = user_assertion
        # §7.1: the cache identity carries a digest, so no key or log line ever holds the assertion.
        self._assertion_digest = hashlib.sha256(user_assertion.encode("utf-8", "surrogatepass")).hexdigest()
        self._client_secret = client_secret
        self._signer = (
            None
            if client_certificate is None
            else CertificateSigner(
                path=None,
                data=bytes(client_certificate),
                password=password,
                owner=_OWNER,
                name="client_certificate",
            )
        )
        self._password = password
        self._client_assertion_func = client_assertion_func
        self._client_auth_kind = given[0]

    @property
    def _identity(self) -> str:
        return f"obo:{self._authority}:{self._client_id}:{self._assertion_digest}"

    @property
    def _secrets(self) -> tuple[str, ...]:
        """What this credential holds verbatim and must never show (§0.7)."""
        password = self._password
        shown = password.decode("utf-8", "replace") if isinstance(password, bytes) else password
        return tuple(s for s in (self._user_assertion, self._client_secret, shown) if s)

    # -- transient state (§7.4): refresh tokens (the signer drops its parsed certificate itself) --

    _transient = (*EntraCredential._transient, "_refresh_tokens")

    def _reset_transient(self) -> None:
        super()._reset_transient()
        self._refresh_tokens = {}

    # -- the grant --

    def fetch_flow(self, call: TokenCall, key: CacheKey, now: float) -> Flow[AccessTokenInfo]:
        """A refresh token if one is kept for this key (§3.3), else the OBO grant (§2).

        Yields:  HttpRequest, and Sleep between retries; a FunctionCall for an assertion function.
        Raises:  AuthError, ProtocolError, CredentialUnavailableError as `token_request_flow`;
                 ConfigError for unreadable certificate bytes or a bad assertion.
        """
        slot = (key[3], key[1])
        claims = merge_claims(call.claims, enable_cae=call.enable_cae, owner=_OWNER)
        scope = " ".join(call.scopes) + EXTRA_SCOPES
        url = yield from self._token_endpoint(key[1], now)
        refresh_token = self._refresh_tokens.get(slot)
        if refresh_token is not None:
            form = yield from self._refresh_form(refresh_token, scope, claims, url, now)
            try:
                return (yield from self._post(url, form, slot, now))
            except AuthError as exc:
                if exc.error != "invalid_grant":
                    raise
                # §3.3: a refused refresh token is dropped, and the grant itself runs again.
                del self._refresh_tokens[slot]
                debug("entra", "%s: the refresh token was refused; asking on behalf of the user", key[3])
        form = yield from self._form(scope, claims, url, now)
        if refresh_token is not None:  # a refused token is still never shown
            form = form._replace(secrets=(*form.secrets, refresh_token))
        return (yield from self._post(url, form, slot, now))

    def _form(self, scope: str, claims: str | None, url: str, now: float) -> Flow[EntraForm]:
        auth = yield from self._client_auth(url, now)
        fields = [
            ("client_id", self._client_id),
            ("grant_type", OBO_GRANT),
            ("client_info", "1"),
            *auth.fields,
            ("requested_token_use", "on_behalf_of"),
            ("scope", scope),
            ("assertion", self._user_assertion),
        ]
        if claims:
            fields.append(("claims", claims))
        return EntraForm(fields, auth.secrets)

    def _refresh_form(
        self, refresh_token: str, scope: str, claims: str | None, url: str, now: float
    ) -> Flow[EntraForm]:
        auth = yield from self._client_auth(url, now)
        fields = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("scope", scope),
            ("client_id", self._client_id),
            ("client_info", "1"),
            *auth.fields,
        ]
        if claims:
            fields.append(("claims", claims))
        return EntraForm(fields, (refresh_token, *auth.secrets))

    def _client_auth(self, url: str, now: float) -> Flow[EntraForm]:
        """The client-authentication fields (§2): the secret, or a new client assertion."""
        if self._client_secret is not None:
            return EntraForm([("client_secret", self._client_secret)], ())
        if self._client_assertion_func is not None:
            assertion = yield from assertion_from(
                self._client_assertion_func,
                owner=_OWNER,
                purpose="client assertion",
                option="client_assertion_func",
            )
        else:
            assert self._signer is not None  # the only client authentication left
            assertion = yield from self._signer.assertion(
                client_id=self._client_id,
                audience=url,
                adfs=url == self._adfs_endpoint,  # the discovered endpoint exactly for tenant adfs
                now=now,
                entropy=self.entropy,
            )
        return EntraForm(
            [("client_assertion_type", JWT_BEARER), ("client_assertion", assertion)], (assertion,)
        )

    def _post(self, url: str, form: EntraForm, slot: tuple[str, str], now: float) -> Flow[AccessTokenInfo]:
        request = EntraRequest(
            owner=_OWNER,
            url=url,
            fields=form.fields,
            secrets=(*self._secrets, *form.secrets),
            user_agent=self._user_agent,
            timeout=self._request_timeout,
        )
        reply = yield from token_reply_flow(request, now=now, entropy=self.entropy)
        if reply.refresh_token:  # a rotated token replaces the old one (§3.3)
            self._refresh_tokens[slot] = reply.refresh_token
        return reply.info

    def __repr__(self) -> str:
        return (
            f"{_OWNER}(tenant_id={self._tenant_id!r}, client_id={self._client_id!r}, "
            f"authority={self._authority!r}, client_auth={self._client_auth_kind!r})"
        )
