"""ClientSecretCredential as a core object: checks, no I/O, pickling, keys (PROTOCOL.md §2.1, §7.1)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from azid_core.acquire import TokenCall
from azid_core.cache import TokenCache
from azid_core.drive import run
from azid_core.effects import HttpRequest
from azid_core.entra.confidential import ClientSecretCredential, EntraCredential
from azid_core.errors import ConfigError
from azid_core.testing import EntraEmulator
from azid_core.tokens import AccessTokenInfo

NOW = 1_700_000_000.0
SECRET = "pickle-secret~value.9"
SCOPE = "https://vault.azure.net/.default"


def make(**kwargs: Any) -> ClientSecretCredential:
    kwargs.setdefault("env", {})
    return ClientSecretCredential("tenant-a", "client-a", SECRET, **kwargs)


def test_construction_does_no_io() -> None:
    emulator = EntraEmulator(clock=lambda: NOW)
    env = {"AZURE_AUTHORITY_HOST": "login.microsoftonline.us", "AZURE_HTTP_USER_AGENT": "x"}
    cred = ClientSecretCredential("tenant-a", "client-a", SECRET, env=env)
    assert emulator.requests == []
    assert len(cred.token_cache) == 0
    # The env snapshot is taken at construction: later changes do not matter.
    env["AZURE_AUTHORITY_HOST"] = "login.chinacloudapi.cn"
    key = cred.cache_key(TokenCall((SCOPE,), None, None, False))
    assert key == ((SCOPE,), "tenant-a", False, "secret:https://login.microsoftonline.us:client-a")


def test_env_none_reads_the_process_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", "login.microsoftonline.us")
    monkeypatch.setenv("AZURE_HTTP_USER_AGENT", "my-app/1.0")
    cred = ClientSecretCredential("tenant-a", "client-a", SECRET)
    # Read at construction only: later changes to the process environment do not matter.
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", "login.chinacloudapi.cn")
    assert cred.cache_key(TokenCall((SCOPE,), None, None, False))[3] == (
        "secret:https://login.microsoftonline.us:client-a"
    )
    assert cred._user_agent.endswith(" my-app/1.0")


@pytest.mark.parametrize(
    ("args", "kwargs", "option"),
    [
        (("tenant-a", "", SECRET), {}, "client_id"),
        (("tenant-a", "   ", SECRET), {}, "client_id"),
        (("tenant-a", None, SECRET), {}, "client_id"),
        (("tenant-a", "client-a", ""), {}, "client_secret"),
        (("tenant-a", "client-a", None), {}, "client_secret"),
        (("", "client-a", SECRET), {}, "tenant_id"),
        (("bad tenant", "client-a", SECRET), {}, "tenant_id"),
        (("-tenant", "client-a", SECRET), {}, "tenant_id"),
        (("tenant-a", "client-a", SECRET), {"request_timeout": 0}, "request_timeout"),
        (("tenant-a", "client-a", SECRET), {"request_timeout": -1}, "request_timeout"),
        (("tenant-a", "client-a", SECRET), {"request_timeout": 3600}, "request_timeout"),
        (("tenant-a", "client-a", SECRET), {"request_timeout": float("nan")}, "request_timeout"),
        (("tenant-a", "client-a", SECRET), {"request_timeout": True}, "request_timeout"),
        (("tenant-a", "client-a", SECRET), {"request_timeout": "30"}, "request_timeout"),
        (
            ("tenant-a", "client-a", SECRET),
            {"additionally_allowed_tenants": "tenant-b"},
            "additionally_allowed_tenants",
        ),
        (
            ("tenant-a", "client-a", SECRET),
            {"additionally_allowed_tenants": ["bad one"]},
            "additionally_allowed_tenants",
        ),
        (("tenant-a", "client-a", SECRET), {"authority": "http://insecure"}, "authority"),
        (
            ("tenant-a", "client-a", SECRET),
            {"env": {"AZURE_AUTHORITY_HOST": "ftp://x"}},
            "AZURE_AUTHORITY_HOST",
        ),
    ],
)
def test_config_errors(args: tuple[Any, ...], kwargs: dict[str, Any], option: str) -> None:
    kwargs.setdefault("env", {})
    with pytest.raises(ConfigError) as info:
        ClientSecretCredential(*args, **kwargs)
    message = str(info.value)
    assert message.startswith(f"ClientSecretCredential: {option} is invalid: ")
    assert SECRET not in message


def test_valid_options() -> None:
    cred = make(
        authority="https://login.contoso.local/",
        additionally_allowed_tenants=("*", "tenant-b"),
        request_timeout=3599.5,
        disable_instance_discovery=True,
    )
    assert repr(cred) == (
        "ClientSecretCredential(tenant_id='tenant-a', client_id='client-a', authority='https://login.contoso.local')"
    )
    assert make(request_timeout=0.001) is not None
    assert make(additionally_allowed_tenants=iter(["tenant-b"])) is not None


def test_pickle_round_trip() -> None:
    emulator = EntraEmulator(clock=lambda: NOW)
    emulator.add_app("tenant-a", "client-a", SECRET)
    cred = make(
        authority="https://login.contoso.local", additionally_allowed_tenants=["tenant-b"], request_timeout=7
    )
    call = TokenCall((SCOPE,), None, None, False)
    run(cred.fetch_flow(call, cred.cache_key(call), NOW), emulator)  # type: ignore[arg-type]
    cred.token_cache.store(cred.cache_key(call), AccessTokenInfo("tok", int(NOW) + 3600), NOW)
    assert len(cred.token_cache) == 1
    data = pickle.dumps(cred)
    back = pickle.loads(data)
    assert type(back) is ClientSecretCredential
    assert isinstance(back.token_cache, TokenCache)
    assert back.token_cache is not cred.token_cache
    assert len(back.token_cache) == 0  # a new, empty cache
    state = dict(vars(cred))
    del state["_cache"]
    back_state = dict(vars(back))
    del back_state["_cache"]
    assert back_state == state  # configuration equal
    assert repr(back) == repr(cred)
    assert SECRET not in repr(back)
    # The copy works: same request as the original.
    flow = back.fetch_flow(call, back.cache_key(call), NOW)
    request = next(flow)
    assert isinstance(request, HttpRequest)
    assert request.url == "https://login.contoso.local/tenant-a/oauth2/v2.0/token"
    assert request.timeout == 7.0
    flow.close()


def test_pickle_without_custom_entropy() -> None:
    back = pickle.loads(pickle.dumps(ClientSecretCredential("tenant-a", "client-a", SECRET, env={})))
    assert len(back.token_cache) == 0


def test_cache_key_checks_options_and_canonicalizes() -> None:
    cred = make(additionally_allowed_tenants=["tenant-b"])
    key = cred.cache_key(TokenCall(("b", "a", "b"), None, "tenant-b", True))
    assert key == (("a", "b"), "tenant-b", True, "secret:https://login.microsoftonline.com:client-a")
    with pytest.raises(ConfigError, match="scopes is invalid"):
        cred.cache_key(TokenCall((), None, None, False))
    with pytest.raises(ConfigError, match="scopes is invalid"):
        cred.cache_key(TokenCall(("a b",), None, None, False))
    with pytest.raises(ConfigError, match="tenant_id is invalid"):
        cred.cache_key(TokenCall(("a",), None, "tenant-c", False))
    with pytest.raises(ConfigError, match="claims is invalid"):
        cred.cache_key(TokenCall(("a",), "[1]", None, True))
    # Without CAE the claims are not parsed, so any text is accepted.
    assert cred.cache_key(TokenCall(("a",), "[1]", None, False))[1] == "tenant-a"


def test_multitenant_disabled_by_env() -> None:
    cred = make(env={"AZURE_IDENTITY_DISABLE_MULTITENANTAUTH": "1"}, additionally_allowed_tenants=["*"])
    assert cred.cache_key(TokenCall(("a",), None, "tenant-b", False))[1] == "tenant-a"
    cred = make(env={"AZURE_IDENTITY_DISABLE_MULTITENANTAUTH": ""}, additionally_allowed_tenants=["*"])
    assert cred.cache_key(TokenCall(("a",), None, "tenant-b", False))[1] == "tenant-b"


def test_identity_differs_by_client_and_authority() -> None:
    call = TokenCall(("a",), None, None, False)
    keys = {
        make().cache_key(call),
        make(authority="login.microsoftonline.us").cache_key(call),
        ClientSecretCredential("tenant-a", "client-b", SECRET, env={}).cache_key(call),
    }
    assert len(keys) == 3


def test_the_base_class_has_no_grant() -> None:
    with pytest.raises(TypeError, match="abstract"):
        EntraCredential("tenant-a", "client-a", env={})  # type: ignore[abstract]


@pytest.mark.parametrize("suffix", ["app\r\nX-Injected: 1", "app\x00", "appé"])
def test_user_agent_suffix_must_be_printable_ascii(suffix: str) -> None:
    with pytest.raises(ConfigError) as info:
        make(env={"AZURE_HTTP_USER_AGENT": suffix})
    assert str(info.value) == (
        "ClientSecretCredential: AZURE_HTTP_USER_AGENT is invalid: only printable ASCII is allowed"
    )
    assert "app" not in str(info.value).partition(" is invalid")[2]  # the value is never shown
