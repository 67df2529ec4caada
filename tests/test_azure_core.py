"""azure-core accepts azid credentials: its bearer-token policies put `Bearer <token>` on a request,
through `get_token_info` when the credential has it (azure-core >= 1.31), on every path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.policies import AsyncBearerTokenCredentialPolicy, BearerTokenCredentialPolicy
from azure.core.rest import HttpRequest

from azid_core import ClientSecretCredential
from tests.conftest import CLIENT, SECRET, TENANT, FakeClock

if TYPE_CHECKING:
    from azid_core.testing import EntraEmulator
    from tests.loopback import LoopbackServer
    from tests.paths import Path

SCOPE = "https://vault.azure.net/.default"


def _pipeline_request() -> PipelineRequest[HttpRequest]:
    return PipelineRequest(HttpRequest("GET", "https://127.0.0.1:1/secrets/x"), PipelineContext(None))


def test_bearer_policy_authorizes_a_request_with_get_token_info(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    core = ClientSecretCredential(TENANT, CLIENT, SECRET, authority=server.url, env={})
    cred = path.credential(core, clock)
    calls: list[str] = []
    original_get_token = cred.get_token

    def refuse_get_token(*scopes: str, **kwargs: Any) -> Any:
        calls.append("get_token")
        return original_get_token(*scopes, **kwargs)

    cred.get_token = refuse_get_token  # an instance attribute: records a fallback to get_token
    request = _pipeline_request()
    if path.is_async:
        policy: Any = AsyncBearerTokenCredentialPolicy(cred, SCOPE)
        path.call(policy.on_request, request)
    else:
        policy = BearerTokenCredentialPolicy(cred, SCOPE)
        policy.on_request(request)
    scheme, _, token = request.http_request.headers["Authorization"].partition(" ")
    assert scheme == "Bearer"
    assert emulator.decode(token)["aud"] == "https://vault.azure.net"
    assert calls == []  # the policy used get_token_info
    assert emulator.token_requests == 1
    path.close(cred)


def test_bearer_policy_falls_back_to_get_token_and_reuses_the_cache(
    path: Path, server: LoopbackServer, emulator: EntraEmulator, clock: FakeClock
) -> None:
    core = ClientSecretCredential(TENANT, CLIENT, SECRET, authority=server.url, env={})
    cred = path.credential(core, clock)
    first = path.get_token(cred, SCOPE)

    class OnlyGetToken:
        """The older azure-core protocol: a credential with get_token alone."""

        def __init__(self, inner: Any) -> None:
            self.get_token = inner.get_token

    request = _pipeline_request()
    if path.is_async:
        policy: Any = AsyncBearerTokenCredentialPolicy(OnlyGetToken(cred), SCOPE)  # type: ignore[arg-type]
        path.call(policy.on_request, request)
    else:
        BearerTokenCredentialPolicy(OnlyGetToken(cred), SCOPE).on_request(request)
    assert request.http_request.headers["Authorization"] == f"Bearer {first.token}"
    assert emulator.token_requests == 1
    path.close(cred)
