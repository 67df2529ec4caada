"""azid over `requests`: a sync credential for any Azure SDK client.

>>> cred = azid_requests.Credential(ClientSecretCredential(tenant_id, client_id, secret))
>>> cred.get_token("https://vault.azure.net/.default")

This module only moves bytes: it turns an `HttpRequest` into `Session.request` and maps requests'
exceptions to `TransportError`. Trust follows requests (REQUESTS_CA_BUNDLE, or the session's
`verify`), and so do proxies.

A request with `pin_sha1`, `tls_server_name`, `ca_pem` or `bypass_proxy` (PROTOCOL.md §0.1) goes
through a `requests.Session` the credential keeps for that setting, made on first use and closed by
`close()`, never through the user's session. Its mounted `HTTPAdapter` hands urllib3 the setting as
pool keywords: `assert_fingerprint` for a pin (urllib3 compares it after the handshake, before sending,
with no CA or hostname check), `server_hostname` for the SNI and checked name, `ca_cert_data` as the
only trust for `ca_pem`. Bypassing and pinned sessions have `trust_env=False`, so no proxy.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

import requests
import requests.adapters
from urllib3.exceptions import MaxRetryError, ReadTimeoutError
from urllib3.exceptions import ProtocolError as Urllib3ProtocolError
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.util import SKIP_HEADER

from azid_core.effects import HttpRequest, HttpResponse
from azid_core.errors import TransportError
from azid_core.frontend import CredentialBase
from azid_core.transport import BodyBuffer, TlsSetting, pem_text, pin_mismatch

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from requests.adapters import _HostParams, _PoolKwargs

    from azid_core.acquire import TokenSource

__all__ = ["Credential"]

CHUNK = 65536
# What urllib3's assert_fingerprint raises on a mismatch (urllib3.util.ssl_.assert_fingerprint), and on a
# peer that showed no certificate; its message also holds both hashes, which azid does not repeat.
_PIN_FAILURES = ("Fingerprints did not match", "No certificate for the peer")


def _pin_failed(exc: requests.exceptions.SSLError) -> bool:
    retry = exc.args[0] if exc.args else None
    reason = retry.reason if isinstance(retry, MaxRetryError) else None
    return isinstance(reason, Urllib3SSLError) and str(reason).startswith(_PIN_FAILURES)


def transport_error(exc: requests.RequestException, where: str = "") -> TransportError:
    """The azid failure kind of a requests exception (the order matters: subclasses first)."""
    cause = exc.args[0] if exc.args else None
    if isinstance(exc, requests.exceptions.SSLError) and _pin_failed(exc):
        return pin_mismatch(where)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        kind = "connect"  # nothing was sent
    elif isinstance(exc, requests.exceptions.ProxyError):
        kind = "proxy"
    elif isinstance(exc, requests.exceptions.SSLError):
        kind = "tls"
    elif isinstance(exc, requests.exceptions.Timeout) or isinstance(cause, ReadTimeoutError):
        kind = "timeout"
    elif isinstance(
        exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)
    ):
        kind = "closed"
    elif isinstance(exc, requests.exceptions.ConnectionError):
        kind = "closed" if isinstance(cause, Urllib3ProtocolError) else "connect"
    elif isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)):
        kind = "connect"
    else:
        kind = "closed"
    return TransportError(kind, f"{type(exc).__name__}: {exc}")


class _TlsAdapter(requests.adapters.HTTPAdapter):
    """An `HTTPAdapter` whose urllib3 pools take one `TlsSetting`, through the two methods requests
    documents for subclasses to change TLS settings."""

    def __init__(self, tls: TlsSetting) -> None:
        self._tls = tls
        super().__init__()

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: str | tuple[str, str] | None = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        host, kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        pool = cast("dict[str, Any]", kwargs)  # urllib3 takes more keywords than requests' stubs list
        tls = self._tls
        if tls.pin_sha1 is not None:
            # Sent with verify=False: the pin is the trust, no CA or hostname check (§0.1). urllib3
            # compares SHA-1(leaf) by hmac.compare_digest right after the handshake and, on a mismatch,
            # closes the socket before sending anything.
            pool["assert_fingerprint"] = tls.pin_sha1.hex()
        elif tls.ca_pem is not None:
            pool.pop("ca_certs", None)  # ca_pem replaces the trust store (§0.1)
            pool.pop("ca_cert_dir", None)
            pool["ca_cert_data"] = pem_text(tls.ca_pem, urlsplit(request.url or "").netloc)
        if tls.tls_server_name is not None:
            pool["server_hostname"] = tls.tls_server_name  # the SNI name, and the name ssl checks
        return host, kwargs

    def cert_verify(self, conn: Any, url: str, verify: bool | str, cert: Any) -> None:
        # Here requests would put its CA bundle on the pool, next to ca_pem, which is the whole trust.
        if self._tls.ca_pem is None or self._tls.pin_sha1 is not None:
            super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]


def _session_for(tls: TlsSetting) -> requests.Session:
    session = requests.Session()
    session.trust_env = not tls.direct  # no proxy from HTTP(S)_PROXY for bypassing or pinned requests
    if tls.pin_sha1 is not None or tls.ca_pem is not None or tls.tls_server_name is not None:
        adapter = _TlsAdapter(tls)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
    return session


class Credential(CredentialBase):
    """A sync azure-core credential; `session` is used as given and left open by `close()`."""

    def __init__(
        self,
        core: TokenSource,
        session: requests.Session | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(core, clock=clock)
        self._given = session
        # Made at the first request that needs it: a managed identity's requests, all direct, never do.
        self._own: requests.Session | None = None
        self._lock = threading.Lock()  # credentials are shared by threads; one session per setting
        self._special: dict[TlsSetting, requests.Session] = {}

    @property
    def _session(self) -> requests.Session:
        """The session for requests with no setting of their own: the given one, else the credential's."""
        if self._given is not None:
            return self._given
        with self._lock:
            if self._own is None:
                self._own = requests.Session()
            return self._own

    def _session_and_trust(self, request: HttpRequest) -> tuple[requests.Session, bool | str | None]:
        """The session for `request`, and the `verify` to send with (None: the session's own)."""
        tls = TlsSetting.of(request)
        if tls is None:
            return self._session, None
        with self._lock:
            session = self._special.get(tls)
            if session is None:
                session = self._special[tls] = _session_for(tls)
        if tls.pin_sha1 is not None:
            return session, False  # no CA check: the adapter's assert_fingerprint is the trust
        if tls.ca_pem is not None or request.url[:7].lower() == "http://":
            return session, None  # the adapter's ca_cert_data is the trust, or no TLS at all
        # Otherwise trust what the user's session would (its `verify`, else REQUESTS_CA_BUNDLE), which a
        # trust_env=False session would not look up.
        settings = self._session.merge_environment_settings(request.url, {}, None, None, None)
        verify: bool | str | None = settings["verify"]
        return session, verify

    def _http(self, request: HttpRequest) -> HttpResponse:
        if request.pin_sha1 is not None and not request.url.lower().startswith("https:"):
            # A pin over plain TCP would silently check nothing.
            raise TransportError("tls", f"{urlsplit(request.url).netloc}: pin_sha1 needs an https URL")
        session, verify = self._session_and_trust(request)
        headers: dict[str, str | None] = dict(request.headers)
        ours = {name.lower() for name in headers}
        for name in session.headers:  # send no session defaults (Accept-Encoding, ...)
            if name.lower() not in ours and name.lower() != "connection":
                headers[name] = None
        if "accept-encoding" not in ours:
            headers["Accept-Encoding"] = SKIP_HEADER  # else http.client adds `identity`
        deadline = time.monotonic() + request.timeout
        try:
            response = session.request(
                request.method,
                request.url,
                data=request.body or None,
                headers=headers,
                timeout=(request.connect_timeout or request.timeout, request.timeout),
                allow_redirects=False,
                stream=True,
                verify=verify,
            )
            with response:
                body = BodyBuffer(request.max_response_bytes)
                body.expect(response.headers.get("content-length"))
                for chunk in response.iter_content(CHUNK):
                    body.add(chunk)
                    if time.monotonic() > deadline:
                        raise TransportError("timeout", f"no complete response within {request.timeout} s")
                return HttpResponse(response.status_code, tuple(response.headers.items()), body.getvalue())
        except requests.RequestException as exc:
            raise transport_error(exc, urlsplit(request.url).netloc) from exc

    def close(self) -> None:
        with self._lock:
            own = [*self._special.values(), *([self._own] if self._own is not None else [])]
            self._special, self._own = {}, None
        for session in own:
            session.close()
