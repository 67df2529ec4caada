"""Azure Machine Learning compute as a managed-identity source (PROTOCOL.md §4.2, §4.3): the GET to
`MSI_ENDPOINT` with the `secret` header, under policy S.
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

__all__ = ["AzureMLSource", "azure_ml_flow"]

SOURCE = "azure_ml"
API_VERSION = "2017-09-01"
# Azure ML's own spelling of the client id parameter (§4.2).
SELECTOR_QUERY = {"client_id": "clientid", "object_id": "object_id", "resource_id": "msi_res_id"}


class AzureMLSource(NamedTuple):
    """`MSI_ENDPOINT` and `MSI_SECRET` (checked printable ASCII; a secret)."""

    endpoint: str
    secret: str

    def __repr__(self) -> str:
        return f"AzureMLSource({self.endpoint!r}, secret='****')"


def azure_ml_flow(source: AzureMLSource, call: SourceCall, *, now: float) -> Flow[AccessTokenInfo]:
    """Get a token from the Azure ML identity endpoint.

    Yields:  HttpRequest, and Sleep between retries (policy S).
    Returns: the token (`expires_on` before `expires_in`; an int, an epoch string or an
             `M/D/YYYY` date, §10 item 8).
    Raises:  CredentialUnavailableError when the endpoint is unreachable; NotConfiguredError for a
             400; AuthError for another non-2xx; ProtocolError for an unreadable 2xx.
    """
    query = (("api-version", API_VERSION), ("resource", call.resource), *selector_query(call, SELECTOR_QUERY))
    request = source_request("GET", source.endpoint, query, (("secret", source.secret),), call)
    secrets = (source.secret,)
    try:
        response, now = yield from send_with_retry(request, chain_policy(SERVICE_POLICY, call), now)
    except TransportError as exc:
        raise unreachable(SOURCE, source.endpoint, exc, secrets) from exc
    return read_reply(
        response, call, source=SOURCE, expiry_order=("expires_on", "expires_in"), now=now, secrets=secrets
    )
