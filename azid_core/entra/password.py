"""The deprecated username/password grant (ROPC) and its user-realm check (PROTOCOL.md §1.2, §3, §3.3).

`UsernamePasswordCredential` asks the user realm whether the account is managed by Entra ID (a
federated one would need WS-Trust, which azid does not speak), then posts the password grant. It is
minimal: no refresh-token reuse, so each cache miss signs in again.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from ..effects import HttpRequest
from ..errors import AuthError, ConfigError, CredentialUnavailableError, TransportError, protocol_error
from ..redact import excerpt, mask
from ..wire import ENTRA_POLICY, new_request_id, send_with_retry
from .confidential import EntraCredential, EntraForm
from .endpoint import CONNECT_TIMEOUT, SERVICE, parse_error_reply

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ..effects import Flow

__all__ = ["UsernamePasswordCredential"]

_OWNER = "UsernamePasswordCredential"
USER_SCOPES = ("offline_access", "openid", "profile")  # §3: appended to user flows, each if absent


def user_scope(scope: str) -> str:
    """`scope` plus ` offline_access openid profile`, each only if absent (§3)."""
    present = set(scope.split())
    return " ".join([scope, *(extra for extra in USER_SCOPES if extra not in present)])


class UsernamePasswordCredential(EntraCredential):
    """A user signing in with a password: deprecated by Microsoft, and refused by MFA (§3.3).

    >>> core = UsernamePasswordCredential(client_id, "user@contoso.com", password)

    Departure from §7.1: the identity is `user:{authority}:{client_id}:{username}`, since the
    home account ID is known only after the first token.
    """

    def __init__(
        self,
        client_id: str,
        username: str,
        password: str,
        *,
        tenant_id: str = "organizations",
        authority: str | None = None,
        additionally_allowed_tenants: Iterable[str] = (),
        request_timeout: float | None = None,
        disable_instance_discovery: bool = False,
        env: Mapping[str, str] | None = None,
        entropy: Callable[[int], bytes] | None = None,
    ) -> None:
        import warnings

        warnings.warn(
            f"{_OWNER} is deprecated: the username/password grant fails for accounts with multi-factor "
            "authentication; use an interactive or a service-principal credential",
            DeprecationWarning,
            stacklevel=2,
        )
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
        for name, value in (("username", username), ("password", password)):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{_OWNER}: {name} is invalid: a non-empty string is required")
        self._username = username
        self._password = password

    @property
    def _identity(self) -> str:
        return f"user:{self._authority}:{self._client_id}:{self._username}"

    def _form(self, scope: str, claims: str | None, url: str, now: float) -> Flow[EntraForm]:
        yield from self._check_realm(now)
        fields = [
            ("grant_type", "password"),
            ("username", self._username),
            ("password", self._password),
            ("client_id", self._client_id),
            ("scope", user_scope(scope)),
            ("client_info", "1"),
        ]
        if claims:
            fields.append(("claims", claims))
        return EntraForm(fields, (self._password,))

    def _check_realm(self, now: float) -> Flow[None]:
        """GET the user realm (§1.2, policy E): a federated account cannot use this grant.

        Yields:  HttpRequest, and Sleep between retries.
        Raises:  AuthError for a federated account or an error reply (404 is skipped: no realm
                 service there); ProtocolError for an unreadable reply; CredentialUnavailableError if
                 it cannot be reached.
        """
        parts = urlsplit(self._authority)
        username = quote(self._username, safe="")
        url = f"{parts.scheme}://{parts.netloc}/common/userrealm/{username}?api-version=1.0"
        request_id = new_request_id(self.entropy)
        request = HttpRequest(
            "GET",
            url,
            headers=(
                ("User-Agent", self._user_agent),
                ("x-ms-client-request-id", request_id),
                ("client-request-id", request_id),
                ("Accept", "application/json"),
            ),
            timeout=self._request_timeout,
            connect_timeout=min(CONNECT_TIMEOUT, self._request_timeout),
        )
        secrets = (self._password,)
        try:
            response, _ = yield from send_with_retry(request, ENTRA_POLICY, now)
        except TransportError as exc:
            raise CredentialUnavailableError(
                f"{_OWNER}: the {SERVICE} user realm at {url} could not be reached ({exc.kind}): "
                f"{mask(exc.detail, secrets)}"
            ) from exc
        if response.status == 404:
            return
        if not 200 <= response.status < 300:
            raise parse_error_reply(response, owner=_OWNER, secrets=secrets, request_id=request_id)
        try:
            document = json.loads(response.body)
        except (ValueError, RecursionError):
            document = None
        if not isinstance(document, dict):
            shown = excerpt(response.body, secrets) or "empty"
            raise protocol_error(_OWNER, f"{SERVICE} user realm", "body", f"not a JSON object: {shown}")
        if document.get("account_type") == "Federated":
            raise AuthError(
                f"{_OWNER}: the account's domain is federated, and WS-Trust is not supported: use an "
                "interactive credential for this account",
                status=response.status,
                request_id=request_id,
            )

    def __repr__(self) -> str:
        return (
            f"{_OWNER}(client_id={self._client_id!r}, username={self._username!r}, "
            f"tenant_id={self._tenant_id!r}, authority={self._authority!r})"
        )
