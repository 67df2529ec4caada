"""The Azure instance metadata service (IMDS) as a managed-identity source (PROTOCOL.md §4.2, §4.3,
§4.4, §4.5): the token GET under policy I, and the one-second probe chains run first.

IMDS listens on a link-local address on every Azure VM, so its absence shows as a connection that
fails or hangs; the probe tells a chain that quickly. What the probe learnt is the credential's to
remember (`credential.py`): this module only sends and judges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from ..errors import CredentialUnavailableError, TransportError
from ..redact import excerpt
from ..tokens import json_object
from ..wire import RetryPolicy, http, send_with_retry
from .common import OWNER, chain_policy, read_reply, selector_query, source_request, unreachable

if TYPE_CHECKING:
    from ..effects import Flow, HttpRequest, HttpResponse
    from ..tokens import AccessTokenInfo
    from .common import SourceCall

__all__ = [
    "IMDS_HOST",
    "IMDS_POLICY",
    "ImdsSource",
    "ProbeFailed",
    "imds_flow",
    "imds_probe_flow",
    "imds_source",
]

SOURCE = "imds"
NAME = f"{OWNER} ({SOURCE})"
IMDS_HOST = "http://169.254.169.254"
TOKEN_PATH = "/metadata/identity/oauth2/token"
API_VERSION = "2018-02-01"
CONNECT_TIMEOUT = 2.0  # §0.5
PROBE_TIMEOUT = 1.0  # §4.5: one deadline for connect and read (azure-identity waits 300 s, §10 item 10)
SELECTOR_QUERY = {"client_id": "client_id", "object_id": "object_id", "resource_id": "msi_res_id"}

# Policy I (§0.5, §4.4). IMDS answers 404 and 410 while it starts up and asks for 70 s of patience
# after a 410, hence the long schedule (0, 5, 10, 20, 40 s) after one; 0.8·2^(n-1) otherwise.
IMDS_POLICY = RetryPolicy(
    statuses=frozenset({404, 408, 410, 429, *range(500, 600)}),
    transport_kinds=frozenset({"connect", "timeout", "closed"}),
    delays=(0.0, 1.6, 3.2, 6.4, 12.8),
    budget=90.0,
    slow_statuses=frozenset({410}),
    slow_delays=(0.0, 5.0, 10.0, 20.0, 40.0),
    transport_retries=3,
)


class ImdsSource(NamedTuple):
    """The IMDS token endpoint."""

    url: str


class ProbeFailed(NamedTuple):
    """A failed probe: how it failed (a transport kind, or `HTTP 403`), and the error to raise."""

    kind: str
    error: CredentialUnavailableError


def imds_source(endpoint: str | None) -> ImdsSource:
    """The source at `endpoint` (a checked http(s) base URL; default 169.254.169.254)."""
    return ImdsSource(f"{(endpoint or IMDS_HOST).rstrip('/')}{TOKEN_PATH}")


def _query(call: SourceCall) -> tuple[tuple[str, str], ...]:
    return (("api-version", API_VERSION), ("resource", call.resource), *selector_query(call, SELECTOR_QUERY))


def _network_unreachable(response: HttpResponse) -> bool:
    """Docker Desktop's proxy answers for 169.254.169.254 with a 403 saying the network is
    unreachable: no IMDS here (§4.3)."""
    return response.status == 403 and b"unreachable" in response.body.lower()


def imds_probe_flow(source: ImdsSource, call: SourceCall) -> Flow[ProbeFailed | None]:
    """Ask once, within one second, whether anything answers at the IMDS endpoint (§4.5): the token
    GET without `Metadata` (IMDS refuses it with a 400, which is enough), no proxy, no retry.

    Yields:  one HttpRequest.
    Returns: None when an HTTP reply came back (IMDS is here), else how the probe failed.
    """
    request: HttpRequest = source_request("GET", source.url, _query(call), (), call)._replace(
        timeout=PROBE_TIMEOUT, connect_timeout=PROBE_TIMEOUT, bypass_proxy=True
    )
    try:
        response = yield from http(request)
    except TransportError as exc:
        error = CredentialUnavailableError(f"{NAME}: IMDS did not answer within 1 s ({exc.kind})")
        error.__cause__ = exc  # the transport failure is always the cause (§8)
        return ProbeFailed(exc.kind, error)
    if _network_unreachable(response):
        return ProbeFailed(
            "HTTP 403",
            CredentialUnavailableError(
                f"{NAME}: the network to IMDS is unreachable (HTTP 403): {excerpt(response.body)}"
            ),
        )
    return None


def imds_flow(source: ImdsSource, call: SourceCall, *, now: float) -> Flow[AccessTokenInfo]:
    """Get a token from IMDS, retrying per §4.4.

    Yields:  HttpRequest, and Sleep between retries (policy I).
    Returns: the token.
    Raises:  CredentialUnavailableError when IMDS is unreachable, its network is (Docker Desktop's
             403), or the reply is not JSON (not IMDS); NotConfiguredError for a 400 (the identity
             is not assigned); AuthError for another non-2xx; ProtocolError for an unreadable 2xx.
    """
    request = source_request(
        "GET", source.url, _query(call), (("Metadata", "true"),), call, connect_timeout=CONNECT_TIMEOUT
    )
    try:
        response, now = yield from send_with_retry(request, chain_policy(IMDS_POLICY, call), now)
    except TransportError as exc:
        raise unreachable(SOURCE, source.url, exc) from exc
    if _network_unreachable(response):
        raise CredentialUnavailableError(
            f"{NAME}: the network to IMDS is unreachable (HTTP 403): {excerpt(response.body)}"
        )
    body = json_object(response.body)
    if response.status != 400 and body is None:
        # Something answers at the address, but it is not IMDS (§4.3).
        raise CredentialUnavailableError(
            f"{NAME}: the reply (HTTP {response.status}) is not JSON, so the endpoint is not IMDS: "
            f"{excerpt(response.body) or 'empty body'}"
        )
    return read_reply(
        response, call, source=SOURCE, expiry_order=("expires_in", "expires_on"), now=now, body=body
    )
