"""Helpers for the managed-identity core tests: a credential with a fixed env, platform and
entropy, and `get`/`fail`, which run get_token's flow (cache and single-flight included) on
ScriptedIO replies."""

from __future__ import annotations

import json
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

from azid_core.acquire import TokenCall, acquire_flow
from azid_core.drive import run
from azid_core.effects import HttpRequest, HttpResponse, Sleep
from azid_core.errors import AzidError
from azid_core.flight import FlightTable
from azid_core.managed_identity.credential import ManagedIdentityCredential
from azid_core.testing import ScriptedIO

if TYPE_CHECKING:
    from azid_core.effects import Reply
    from azid_core.tokens import AccessTokenInfo

NOW = 1_700_000_000.0
SCOPE = "https://vault.azure.net/.default"
RESOURCE_Q = "https%3A%2F%2Fvault.azure.net"  # the resource as the query carries it
TOKEN = "mi-access-token.0123456789"
REQUEST_ID = "00010203-0405-4607-8809-0a0b0c0d0e0f"
PYTHON = ".".join(str(part) for part in sys.version_info[:3])
# The default IMDS token URL, as the flows build it: compared with effects, never contacted (core
# tests answer with ScriptedIO; the suite's network guard refuses any connection off loopback).
IMDS_URL = "http://169.254.169.254/metadata/identity/oauth2/token"  # expected default
RES_ID = "/subscriptions/s1/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u"
RES_ID_Q = RES_ID.replace("/", "%2F")


def entropy(size: int) -> bytes:
    return bytes(range(size))


def make(env: dict[str, str] | None = None, **kwargs: Any) -> ManagedIdentityCredential:
    """A credential on macOS (no Arc agent to look for) unless `platform` says otherwise."""
    kwargs.setdefault("platform", "darwin")
    kwargs.setdefault("entropy", entropy)
    return ManagedIdentityCredential(env=env if env is not None else {}, **kwargs)


def base_headers(platform: str = "darwin") -> tuple[tuple[str, str], ...]:
    return (
        ("User-Agent", f"azid/0.1.0 Python/{PYTHON} ({platform})"),
        ("x-ms-client-request-id", REQUEST_ID),
        ("Accept", "application/json"),
    )


def token_reply(**fields: Any) -> HttpResponse:
    """A 200 with the token and `fields`."""
    return HttpResponse(200, (), json.dumps({"access_token": TOKEN, **fields}).encode())


def json_reply(status: int, body: object, headers: tuple[tuple[str, str], ...] = ()) -> HttpResponse:
    return HttpResponse(status, headers, json.dumps(body).encode())


def call(
    claims: str | None = None, *, in_chain: bool = False, scope: str = SCOPE, tenant_id: str | None = None
) -> TokenCall:
    return TokenCall((scope,), claims, tenant_id, False, in_chain)


def get(
    cred: ManagedIdentityCredential,
    *replies: Reply | BaseException,
    now: float = NOW,
    **kwargs: Any,
) -> tuple[AccessTokenInfo, ScriptedIO]:
    io = ScriptedIO(*replies)
    info = run(acquire_flow(cred, call(**kwargs), FlightTable(threading.Event), now), io)
    assert io.unused == 0
    return info, io


def fail(
    cred: ManagedIdentityCredential,
    *replies: Reply | BaseException,
    now: float = NOW,
    **kwargs: Any,
) -> tuple[AzidError, ScriptedIO]:
    io = ScriptedIO(*replies)
    with pytest.raises(AzidError) as caught:
        run(acquire_flow(cred, call(**kwargs), FlightTable(threading.Event), now), io)
    assert io.unused == 0
    return caught.value, io


def requests(io: ScriptedIO) -> list[HttpRequest]:
    return [effect for effect in io.seen if isinstance(effect, HttpRequest)]


def sleeps(io: ScriptedIO) -> list[float]:
    return [effect.seconds for effect in io.seen if isinstance(effect, Sleep)]


def attempt_times(io: ScriptedIO) -> list[float]:
    """When each request was made, counting from the first (Sleep replies are None)."""
    times, clock = [], 0.0
    for effect in io.seen:
        if isinstance(effect, Sleep):
            clock += effect.seconds
        elif isinstance(effect, HttpRequest):
            times.append(round(clock, 6))
    return times
