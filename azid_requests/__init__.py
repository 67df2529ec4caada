"""azid over `requests`: a sync credential for any Azure SDK client.

>>> cred = azid_requests.Credential(ClientSecretCredential(tenant_id, client_id, secret))
>>> cred.get_token("https://vault.azure.net/.default")

This module only moves bytes: it turns an `HttpRequest` into `Session.request` and maps requests'
exceptions to `TransportError`. Trust follows requests (REQUESTS_CA_BUNDLE, or the session's
`verify`), and so do proxies, except for requests marked `bypass_proxy`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import requests
from urllib3.exceptions import ProtocolError as Urllib3ProtocolError
from urllib3.exceptions import ReadTimeoutError
from urllib3.util import SKIP_HEADER

from azid_core.effects import HttpRequest, HttpResponse
from azid_core.errors import TransportError
from azid_core.frontend import CredentialBase
from azid_core.transport import BodyBuffer

if TYPE_CHECKING:
    from collections.abc import Callable

    from azid_core.acquire import TokenSource

__all__ = ["Credential"]

_NO_PROXY = {"http": None, "https": None, "all": None}
CHUNK = 65536


def transport_error(exc: requests.RequestException) -> TransportError:
    """The azid failure kind of a requests exception (the order matters: subclasses first)."""
    cause = exc.args[0] if exc.args else None
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
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()

    def _http(self, request: HttpRequest) -> HttpResponse:
        for field in ("pin_sha1", "tls_server_name", "ca_pem"):
            if getattr(request, field) is not None:
                raise TransportError("tls", f"azid_requests does not support {field} yet")
        headers: dict[str, str | None] = dict(request.headers)
        ours = {name.lower() for name in headers}
        for name in self._session.headers:  # send no session defaults (Accept-Encoding, ...)
            if name.lower() not in ours and name.lower() != "connection":
                headers[name] = None
        if "accept-encoding" not in ours:
            headers["Accept-Encoding"] = SKIP_HEADER  # else http.client adds `identity`
        deadline = time.monotonic() + request.timeout
        try:
            response = self._session.request(
                request.method,
                request.url,
                data=request.body or None,
                headers=headers,
                timeout=(request.connect_timeout or request.timeout, request.timeout),
                allow_redirects=False,
                stream=True,
                # requests drops a proxy whose value is None (its stubs say str only).
                proxies=_NO_PROXY if request.bypass_proxy else None,  # type: ignore[arg-type]
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
            raise transport_error(exc) from exc

    def close(self) -> None:
        if self._owns_session:
            self._session.close()
