"""Azure App Service and Azure Functions as a managed-identity source (PROTOCOL.md §4.2, §4.3): the
GET to `IDENTITY_ENDPOINT` with `X-IDENTITY-HEADER`, under policy S.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from ..errors import TransportError
from ..wire import SERVICE_POLICY, send_with_retry
from .common import chain_policy, read_reply, selector_query, source_request, unreachable

if TYPE_CHECKING:
    from ..effects import Flow
    from ..tokens import AccessTokenInfo
    from .common import SourceCall

__all__ = ["AppServiceSource", "app_service_flow"]

SOURCE = "app_service"
API_VERSION = "2019-08-01"
# The resource id goes as `mi_res_id` here, whatever the caller called it (§10 item 2).
SELECTOR_QUERY = {"client_id": "client_id", "object_id": "object_id", "resource_id": "mi_res_id"}


class AppServiceSource(NamedTuple):
    """`IDENTITY_ENDPOINT` and `IDENTITY_HEADER` (checked printable ASCII; a secret)."""

    endpoint: str
    identity_header: str

    def __repr__(self) -> str:
        return f"AppServiceSource({self.endpoint!r}, identity_header='****')"


def _status_code(body: dict[str, object]) -> str | None:
    """App Service's error code is the number in `statusCode` (§4.3)."""
    code = body.get("statusCode")
    if isinstance(code, bool) or not isinstance(code, (int, str)):
        return None
    return str(code)


def app_service_flow(source: AppServiceSource, call: SourceCall, *, now: float) -> Flow[AccessTokenInfo]:
    """Get a token from the App Service identity endpoint.

    Yields:  HttpRequest, and Sleep between retries (policy S).
    Returns: the token (`expires_on` before `expires_in`; an epoch string or `M/D/YYYY` date).
    Raises:  CredentialUnavailableError when the endpoint is unreachable; NotConfiguredError for a
             400; AuthError for another non-2xx; ProtocolError for an unreadable 2xx.
    """
    query = (("api-version", API_VERSION), ("resource", call.resource), *selector_query(call, SELECTOR_QUERY))
    headers = (("X-IDENTITY-HEADER", source.identity_header), ("Metadata", "true"))
    request = source_request("GET", source.endpoint, query, headers, call)
    secrets = (source.identity_header,)
    try:
        response, now = yield from send_with_retry(request, chain_policy(SERVICE_POLICY, call), now)
    except TransportError as exc:
        raise unreachable(SOURCE, source.endpoint, exc, secrets) from exc
    return read_reply(
        response,
        call,
        source=SOURCE,
        expiry_order=("expires_on", "expires_in"),
        now=now,
        secrets=secrets,
        error_field=_status_code,
    )
