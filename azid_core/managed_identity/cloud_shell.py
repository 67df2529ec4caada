"""Azure Cloud Shell as a managed-identity source (PROTOCOL.md §4.2, §4.3): a form POST to
`MSI_ENDPOINT`, under policy S. Cloud Shell serves the signed-in user's token and has no
user-assigned identities, so the credential refuses a selector here at construction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from ..errors import TransportError
from ..wire import SERVICE_POLICY, form_body, send_with_retry
from .common import chain_policy, read_reply, source_request, unreachable

if TYPE_CHECKING:
    from ..effects import Flow
    from ..tokens import AccessTokenInfo
    from .common import SourceCall

__all__ = ["CloudShellSource", "cloud_shell_flow"]

SOURCE = "cloud_shell"


class CloudShellSource(NamedTuple):
    """`MSI_ENDPOINT`."""

    endpoint: str


def cloud_shell_flow(source: CloudShellSource, call: SourceCall, *, now: float) -> Flow[AccessTokenInfo]:
    """Get a token from the Cloud Shell identity endpoint.

    Yields:  HttpRequest, and Sleep between retries (policy S).
    Returns: the token (`expires_on` before `expires_in`).
    Raises:  CredentialUnavailableError when the endpoint is unreachable; NotConfiguredError for a
             400; AuthError for another non-2xx; ProtocolError for an unreadable 2xx.
    """
    headers = (("Metadata", "true"), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"))
    body = form_body((("resource", call.resource),))
    request = source_request("POST", source.endpoint, (), headers, call, body=body)
    try:
        response, now = yield from send_with_retry(request, chain_policy(SERVICE_POLICY, call), now)
    except TransportError as exc:
        raise unreachable(SOURCE, source.endpoint, exc) from exc
    return read_reply(response, call, source=SOURCE, expiry_order=("expires_on", "expires_in"), now=now)
