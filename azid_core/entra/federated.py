"""Federated credentials: a token another issuer gave this workload, exchanged for an Entra token
(PROTOCOL.md §2, §2.3, §2.4).

`WorkloadIdentityCredential` reads the Kubernetes service-account token from a file (through
`ReadFile`), optionally through the AKS token proxy; `AzurePipelinesCredential` asks the Azure
Pipelines OIDC endpoint for one. Both send it as the §2 "assertion, workload, Pipelines" form. What
is learnt at run time (the token file's copy, the proxy CA) is transient state (§7.4).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlencode, urlsplit

from ..effects import MIB, FileContent, HttpRequest, ReadFile
from ..errors import (
    AuthError,
    AzidError,
    ConfigError,
    CredentialUnavailableError,
    NotConfiguredError,
    TransportError,
    protocol_error,
)
from ..host import host_environ
from ..logs import debug
from ..options import merge_claims
from ..redact import excerpt, mask
from ..tokens import json_object
from ..wire import SERVICE_POLICY, new_request_id, send_with_retry
from .assertion import assertion_form
from .confidential import EntraCredential, EntraForm, check_id
from .endpoint import CONNECT_TIMEOUT, EntraRequest, token_request_flow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ..acquire import TokenCall
    from ..cache import CacheKey
    from ..effects import Flow, HttpResponse
    from ..tokens import AccessTokenInfo

__all__ = ["AzurePipelinesCredential", "WorkloadIdentityCredential"]

TOKEN_FILE_LIMIT = 65536  # §2.3
COPY_MAX_AGE = 300.0  # §2.3: the token file is fully re-read at least every 5 minutes
EXPIRED_ASSERTION = 700024  # AADSTS700024: the client assertion is not within its valid time range
OIDC_SERVICE = "Azure Pipelines OIDC endpoint"
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


class _FileCopy(NamedTuple):
    """What was last read from a file: its content, its mtime, and when (flow time) it was read."""

    data: bytes
    mtime_ns: int
    read_at: float


class _Proxy(NamedTuple):
    """The AKS token proxy (§2.3): where token requests go, and the TLS settings for it."""

    origin: str
    path: str
    sni: str | None
    ca_data: bytes | None
    ca_file: str | None


def _read(effect: ReadFile, *, owner: str, what: str) -> Flow[FileContent]:
    """Read a file; an unreadable one is not configured. `data` is None only for a matching
    `unless_mtime_ns`."""
    try:
        reply = yield effect
    except TransportError as exc:
        raise NotConfiguredError(f"{owner}: the {what} cannot be read ({exc.kind}): {exc.detail}") from exc
    if not isinstance(reply, FileContent) or (
        reply.data is None and reply.mtime_ns != effect.unless_mtime_ns
    ):
        raise AzidError(f"the adapter answered {effect!r} with {reply!r}")
    if reply.data is not None and len(reply.data) > effect.max_bytes:
        raise NotConfiguredError(
            f"{owner}: the {what} {effect.path} holds more than {effect.max_bytes} bytes"
        )
    return reply


def _proxy_settings(env: Mapping[str, str], owner: str) -> _Proxy | None:
    """The AKS token proxy from the environment, checked (§2.3); None when it is not set."""
    proxy = env.get("AZURE_KUBERNETES_TOKEN_PROXY", "").strip()
    sni = env.get("AZURE_KUBERNETES_SNI_NAME", "").strip()
    ca_data = env.get("AZURE_KUBERNETES_CA_DATA", "").strip()
    ca_file = env.get("AZURE_KUBERNETES_CA_FILE", "").strip()
    if ca_data and ca_file:
        raise ConfigError(
            f"{owner}: AZURE_KUBERNETES_CA_DATA is invalid: set it or AZURE_KUBERNETES_CA_FILE, not both"
        )
    if not proxy:
        if sni or ca_data or ca_file:
            raise ConfigError(
                f"{owner}: AZURE_KUBERNETES_TOKEN_PROXY is invalid: it is required when "
                "AZURE_KUBERNETES_SNI_NAME, AZURE_KUBERNETES_CA_DATA or AZURE_KUBERNETES_CA_FILE is set"
            )
        return None
    parts = urlsplit(proxy)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    # The value is not shown: user info in it would be a credential.
    if (
        parts.scheme.lower() != "https"
        or not parts.hostname
        or not port_ok
        or "@" in parts.netloc
        or "?" in proxy
        or "#" in proxy
    ):
        raise ConfigError(
            f"{owner}: AZURE_KUBERNETES_TOKEN_PROXY is invalid: an https URL without user info, query or "
            "fragment is required"
        )
    if sni and not _HOST_NAME.fullmatch(sni):
        raise ConfigError(f"{owner}: AZURE_KUBERNETES_SNI_NAME is invalid: a host name is required")
    return _Proxy(
        f"https://{parts.netloc}",
        parts.path,
        sni or None,
        ca_data.encode() if ca_data else None,
        ca_file or None,
    )


class WorkloadIdentityCredential(EntraCredential):
    """A Kubernetes workload exchanging its service-account token for an Entra token (§2.3).

    >>> core = WorkloadIdentityCredential()  # AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE
    """

    _identity_prefix = "workload"
    _token_copy: _FileCopy | None
    _ca_copy: _FileCopy | None

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        client_id: str | None = None,
        token_file_path: str | None = None,
        enable_azure_proxy: bool = False,
        authority: str | None = None,
        additionally_allowed_tenants: Iterable[str] = (),
        request_timeout: float | None = None,
        disable_instance_discovery: bool = False,
        env: Mapping[str, str] | None = None,
        entropy: Callable[[int], bytes] | None = None,
    ) -> None:
        owner = type(self).__name__
        environment = host_environ() if env is None else env
        # Options win over the environment (§2.3); one error lists everything missing.
        chosen = {
            name: value if value else environment.get(variable, "")
            for name, variable, value in (
                ("tenant_id", "AZURE_TENANT_ID", tenant_id),
                ("client_id", "AZURE_CLIENT_ID", client_id),
                ("token_file_path", "AZURE_FEDERATED_TOKEN_FILE", token_file_path),
            )
        }
        missing = [
            f"{name} ({variable})"
            for name, variable in (
                ("tenant_id", "AZURE_TENANT_ID"),
                ("client_id", "AZURE_CLIENT_ID"),
                ("token_file_path", "AZURE_FEDERATED_TOKEN_FILE"),
            )
            if not chosen[name]
        ]
        if missing:
            raise ConfigError(f"{owner}: missing {', '.join(missing)}: pass the option or set the variable")
        super().__init__(
            chosen["tenant_id"],
            chosen["client_id"],
            authority=authority,
            additionally_allowed_tenants=additionally_allowed_tenants,
            request_timeout=request_timeout,
            disable_instance_discovery=disable_instance_discovery,
            env=environment,
            entropy=entropy,
        )
        self._token_file = check_id(chosen["token_file_path"], "token_file_path", owner)
        self._proxy = _proxy_settings(environment, owner) if enable_azure_proxy else None

    _transient = (*EntraCredential._transient, "_token_copy", "_ca_copy")

    def _reset_transient(self) -> None:
        super()._reset_transient()
        self._token_copy = None
        self._ca_copy = None

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, token_file_path={self._token_file!r})"

    # -- the token file (§2.3) --

    def _federated_token(self, now: float, *, full: bool) -> Flow[str]:
        """The service-account token: the copy while the file's mtime is unchanged and the copy is
        under 5 minutes old, else a full read. Missing or empty → NotConfiguredError."""
        owner = type(self).__name__
        copy = self._token_copy
        fresh = copy is not None and not full and now - copy.read_at < COPY_MAX_AGE
        effect = ReadFile(
            self._token_file,
            max_bytes=TOKEN_FILE_LIMIT,
            unless_mtime_ns=copy.mtime_ns if copy is not None and fresh else None,
        )
        reply = yield from _read(effect, owner=owner, what="federated token file")
        if reply.data is None:
            assert copy is not None  # only a matching unless_mtime_ns answers without data
            return copy.data.decode()
        try:
            token = reply.data.decode("utf-8").strip()
        except UnicodeDecodeError:
            token = ""
        if not token:
            raise NotConfiguredError(f"{owner}: the federated token file {self._token_file} holds no token")
        self._token_copy = _FileCopy(token.encode(), reply.mtime_ns, now)
        return token

    def _ca_pem(self, now: float) -> Flow[bytes | None]:
        """The proxy's CA: AZURE_KUBERNETES_CA_DATA, or the CA file, re-read when its mtime changes
        (an empty file keeps the CA read before, as it is being rewritten)."""
        proxy = self._proxy
        if proxy is None or proxy.ca_file is None:
            return proxy.ca_data if proxy is not None else None
        copy = self._ca_copy
        effect = ReadFile(proxy.ca_file, max_bytes=MIB, unless_mtime_ns=copy.mtime_ns if copy else None)
        reply = yield from _read(effect, owner=type(self).__name__, what="AZURE_KUBERNETES_CA_FILE")
        if reply.data is not None and reply.data.strip():
            copy = self._ca_copy = _FileCopy(reply.data, reply.mtime_ns, now)
        if copy is None:
            raise NotConfiguredError(
                f"{type(self).__name__}: AZURE_KUBERNETES_CA_FILE {proxy.ca_file} is empty"
            )
        return copy.data

    # -- the token request --

    def _form(self, scope: str, claims: str | None, url: str, now: float) -> Flow[EntraForm]:
        assertion = yield from self._federated_token(now, full=False)
        return assertion_form(assertion, self._client_id, scope, claims)

    def _proxied(self, url: str) -> str:
        """The token URL, moved onto the AKS token proxy when there is one (§2.3)."""
        if self._proxy is None:
            return url
        path = urlsplit(url).path
        return f"{self._proxy.origin}{self._proxy.path.rstrip('/')}/{path.lstrip('/')}"

    def fetch_flow(self, call: TokenCall, key: CacheKey, now: float) -> Flow[AccessTokenInfo]:
        """The token request, and one more if Entra says the assertion expired (AADSTS700024) and
        the file now holds another token (§2.3)."""
        owner = type(self).__name__
        claims = merge_claims(call.claims, enable_cae=call.enable_cae, owner=owner)
        scope = " ".join(call.scopes)
        url = self._proxied((yield from self._token_endpoint(key[1], now)))
        ca_pem = yield from self._ca_pem(now)
        form = yield from self._form(scope, claims, url, now)
        try:
            return (yield from self._post(url, form, ca_pem, now))
        except AuthError as error:
            if EXPIRED_ASSERTION not in error.error_codes:
                raise
            debug("workload", "%s: the assertion expired (AADSTS700024); reading the token file again", owner)
            token = yield from self._federated_token(now, full=True)
            if token == form.secrets[0]:
                raise
            form = assertion_form(token, self._client_id, scope, claims)
        return (yield from self._post(url, form, ca_pem, now))

    def _post(self, url: str, form: EntraForm, ca_pem: bytes | None, now: float) -> Flow[AccessTokenInfo]:
        request = EntraRequest(
            owner=type(self).__name__,
            url=url,
            fields=form.fields,
            secrets=form.secrets,
            user_agent=self._user_agent,
            timeout=self._request_timeout,
            tls_server_name=self._proxy.sni if self._proxy is not None else None,
            ca_pem=ca_pem,
        )
        return (yield from token_request_flow(request, now=now, entropy=self.entropy))


class AzurePipelinesCredential(EntraCredential):
    """An Azure Pipelines job exchanging its service connection's OIDC token for an Entra token (§2.4).

    >>> core = AzurePipelinesCredential(tenant_id=t, client_id=c, service_connection_id=s,
    ...                                 system_access_token=os.environ["SYSTEM_ACCESSTOKEN"])
    """

    _identity_prefix = "pipelines"

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        service_connection_id: str,
        system_access_token: str,
        authority: str | None = None,
        additionally_allowed_tenants: Iterable[str] = (),
        request_timeout: float | None = None,
        disable_instance_discovery: bool = False,
        env: Mapping[str, str] | None = None,
        entropy: Callable[[int], bytes] | None = None,
    ) -> None:
        owner = type(self).__name__
        environment = host_environ() if env is None else env
        super().__init__(
            tenant_id,
            client_id,
            authority=authority,
            additionally_allowed_tenants=additionally_allowed_tenants,
            request_timeout=request_timeout,
            disable_instance_discovery=disable_instance_discovery,
            env=environment,
            entropy=entropy,
        )
        self._connection_id = check_id(service_connection_id, "service_connection_id", owner)
        token = check_id(system_access_token, "system_access_token", owner)
        if not _PRINTABLE_ASCII.fullmatch(token):
            # A header value, checked when taken and never shown (§0.4).
            raise ConfigError(f"{owner}: system_access_token is invalid: only printable ASCII is allowed")
        self._system_token = token
        # Read at construction; its absence is reported at get_token, so chains can skip us (§2.4).
        self._oidc_uri = environment.get("SYSTEM_OIDCREQUESTURI", "").strip() or None

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, service_connection_id={self._connection_id!r})"

    def _form(self, scope: str, claims: str | None, url: str, now: float) -> Flow[EntraForm]:
        oidc_token = yield from self._oidc_token(now)
        form = assertion_form(oidc_token, self._client_id, scope, claims)
        return EntraForm(form.fields, (*form.secrets, self._system_token))

    def _oidc_token(self, now: float) -> Flow[str]:
        """POST to the pipeline's OIDC endpoint under policy S for the service connection's token.

        Yields:  HttpRequest, and Sleep between retries.
        Raises:  CredentialUnavailableError without SYSTEM_OIDCREQUESTURI or when it is unreachable;
                 AuthError for any status but 200; ProtocolError for a 200 without `oidcToken`.
        """
        owner = type(self).__name__
        if self._oidc_uri is None:
            raise CredentialUnavailableError(
                f"{owner}: SYSTEM_OIDCREQUESTURI is not set; this is not an Azure Pipelines job"
            )
        base = self._oidc_uri.rstrip("/")
        query = urlencode({"api-version": "7.1", "serviceConnectionId": self._connection_id})
        request_id = new_request_id(self.entropy)
        request = HttpRequest(
            "POST",
            f"{base}{'&' if '?' in base else '?'}{query}",
            headers=(
                ("User-Agent", self._user_agent),
                ("x-ms-client-request-id", request_id),
                ("Accept", "application/json"),
                ("Content-Type", "application/json"),
                ("Authorization", f"Bearer {self._system_token}"),
                # Without it, a bad token is answered with a redirect to a sign-in page.
                ("X-TFS-FedAuthRedirect", "Suppress"),
            ),
            timeout=self._request_timeout,
            connect_timeout=min(CONNECT_TIMEOUT, self._request_timeout),
        )
        secrets = (self._system_token,)
        try:
            response, _ = yield from send_with_retry(request, SERVICE_POLICY, now)
        except TransportError as exc:
            if exc.kind == "too_large":
                raise protocol_error(owner, OIDC_SERVICE, "body", mask(exc.detail, secrets)) from exc
            raise CredentialUnavailableError(
                f"{owner}: the {OIDC_SERVICE} at {base} could not be reached ({exc.kind}): "
                f"{mask(exc.detail, secrets)}"
            ) from exc
        if response.status != 200:
            raise _oidc_refusal(response, owner=owner, secrets=secrets, request_id=request_id)
        body = json_object(response.body)
        if body is None:
            shown = excerpt(response.body, secrets) or "empty"
            raise protocol_error(owner, OIDC_SERVICE, "body", f"not a JSON object: {shown}")
        token = body.get("oidcToken")
        if not isinstance(token, str) or not token:
            raise protocol_error(
                owner, OIDC_SERVICE, "oidcToken", "missing" if token is None else "not a non-empty string"
            )
        return token


def _oidc_refusal(
    response: HttpResponse, *, owner: str, secrets: tuple[str, ...], request_id: str
) -> AuthError:
    """The §2.4 AuthError for a non-200 OIDC reply, with Azure DevOps' tracing headers."""
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(response.status).phrase
    except ValueError:
        phrase = "unknown status"
    traces = "; ".join(
        f"{name}: {mask(response.header(name) or '-', secrets)}" for name in ("x-vss-e2eid", "x-msedge-ref")
    )
    shown = excerpt(response.body, secrets)
    reply = f" Reply: {shown}" if shown.strip() else ""
    return AuthError(
        f"{owner}: the {OIDC_SERVICE} returned HTTP {response.status} ({phrase}); check the service "
        f"connection ID and the pipeline's access to it. {traces}.{reply}",
        status=response.status,
        request_id=request_id,
        body_excerpt=shown or None,
    )
