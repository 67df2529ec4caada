"""Chains as core objects (PROTOCOL.md §6): every §6.1 verdict row and the re-walk rules with small
fake members, the final error exactly, DefaultAzureCredential's members, order, options and
AZURE_TOKEN_CREDENTIALS (§6.2), DeveloperToolsCredential, explain() for a dozen environments, and
no secret in any message."""

from __future__ import annotations

import json
import logging
import pickle
from typing import TYPE_CHECKING, Any

import pytest

from azid_core.acquire import TokenCall, acquire_alone
from azid_core.cache import TokenCache
from azid_core.chains import (
    ChainedTokenCredential,
    DefaultAzureCredential,
    DeveloperToolsCredential,
    MemberReport,
)
from azid_core.drive import run
from azid_core.effects import FileContent, HttpRequest, HttpResponse, ReadFile, Sleep
from azid_core.entra.environment import EnvironmentCredential
from azid_core.entra.federated import WorkloadIdentityCredential
from azid_core.errors import (
    AuthError,
    AzidError,
    ConfigError,
    CredentialUnavailableError,
    DeveloperToolError,
    NotConfiguredError,
    ProtocolError,
)
from azid_core.managed_identity.credential import ManagedIdentityCredential
from azid_core.tokens import AccessTokenInfo

if TYPE_CHECKING:
    from azid_core.cache import CacheKey
    from azid_core.effects import Flow, Reply

NOW = 1_700_000_000.0
LATER = NOW + 4000  # past every fake token's expiry: the next call fetches again
SCOPE = "https://vault.azure.net/.default"


class Member:
    """A core TokenSource answering each fetch with the next outcome (a token or an error)."""

    developer_tool = False

    def __init__(self, *outcomes: AccessTokenInfo | AzidError) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[TokenCall] = []
        self._cache = TokenCache()

    @property
    def token_cache(self) -> TokenCache:
        return self._cache

    def cache_key(self, call: TokenCall) -> CacheKey:
        return (tuple(sorted(call.scopes)), "", False, f"fake:{id(self)}")

    def fetch_flow(self, call: TokenCall, key: CacheKey, now: float) -> Flow[AccessTokenInfo]:
        self.calls.append(call)
        yield Sleep(0.0)  # an effect of the member's own, carried through the chain
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, AzidError):
            raise outcome
        return outcome


class First(Member):
    pass


class Second(Member):
    pass


class Third(Member):
    pass


class Tool(Member):
    developer_tool = True


def token(value: str, *, source: str | None = None, now: float = NOW) -> AccessTokenInfo:
    return AccessTokenInfo(value, int(now) + 3600, source=source)


def unavailable(text: str) -> CredentialUnavailableError:
    return CredentialUnavailableError(text)


def get(chain: ChainedTokenCredential, now: float = NOW, **options: object) -> AccessTokenInfo:
    call = TokenCall((SCOPE,), None, None, False)

    def answer(effect: object) -> Reply:
        assert isinstance(effect, Sleep)
        return None

    return run(acquire_alone(chain, call, now), answer)


def failure(chain: ChainedTokenCredential, now: float = NOW) -> AzidError:
    with pytest.raises(AzidError) as caught:
        get(chain, now)
    return caught.value


# -- §6.1 rows --


def test_zero_members_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^ChainedTokenCredential: credentials is invalid: at least one"):
        ChainedTokenCredential()


def test_token_is_ok_returns_and_remembers(caplog: pytest.LogCaptureFixture) -> None:
    first, second = First(token("t1", source="First:x")), Second()
    chain = ChainedTokenCredential(first, second)
    assert chain.selected is None
    with caplog.at_level(logging.INFO, logger="azid.chains"):
        info = get(chain)
        assert get(chain, NOW + 10).token == "t1"  # the chain's own cache: no member asked
    assert (info.token, info.source) == ("t1", "First:x")
    assert chain.selected == "First"
    assert [call.in_chain for call in first.calls] == [True]
    assert second.calls == []
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "ChainedTokenCredential: First served the token")
    ]
    assert chain.credentials == (first, second)


def test_a_token_without_source_is_named_after_its_member() -> None:
    assert get(ChainedTokenCredential(First(token("t")))).source == "First"


def test_the_chain_cache_serves_by_call_arguments() -> None:
    chain = ChainedTokenCredential(First(token("t")))
    get(chain)
    entry = chain.token_cache.serve(((SCOPE,), None, False), NOW + 1)
    assert entry is not None
    assert entry.info.token == "t"


def test_unavailable_moves_on_and_the_final_error_lists_every_attempt() -> None:
    chain = ChainedTokenCredential(
        First(unavailable("First: not here")), Second(NotConfiguredError("Second: log in"))
    )
    error = failure(chain)
    assert type(error) is CredentialUnavailableError
    assert error.attempts == (
        ("First", "unavailable", "First: not here"),
        ("Second", "unavailable", "Second: log in"),
    )
    assert str(error) == (
        "ChainedTokenCredential could not get a token. Attempts, in order:\n"
        "  First: unavailable: First: not here\n"
        "  Second: unavailable: Second: log in"
    )
    assert chain.selected is None


def test_any_error_of_a_developer_tool_is_skipped() -> None:
    tool = Tool(DeveloperToolError("Tool: `az` exited with 1: boom", tool="az", returncode=1))
    second = Second(token("t2"))
    chain = ChainedTokenCredential(tool, second)
    assert get(chain).token == "t2"
    assert chain.selected == "Second"
    tool2 = Tool(ProtocolError("Tool: cannot read", source="az", field="expiresOn"))
    error = failure(ChainedTokenCredential(tool2))
    assert type(error) is CredentialUnavailableError
    assert error.attempts == (("Tool", "failed (skipped)", "Tool: cannot read"),)


def test_another_error_stops_the_chain_as_its_own_class_with_its_fields() -> None:
    refused = AuthError("First: refused (HTTP 401, invalid_client)", status=401, error="invalid_client")
    refused.error_codes = (7000215,)
    third = Third(token("never"))
    chain = ChainedTokenCredential(Second(unavailable("Second: no")), First(refused), third)
    error = failure(chain)
    assert type(error) is AuthError
    assert isinstance(error, AuthError)
    assert (error.status, error.error, error.error_codes) == (401, "invalid_client", (7000215,))
    assert error.__cause__ is refused
    assert error.attempts == (
        ("Second", "unavailable", "Second: no"),
        ("First", "failed", "First: refused (HTTP 401, invalid_client)"),
    )
    assert (
        str(error)
        == error.args[0]
        == (
            "ChainedTokenCredential could not get a token. Attempts, in order:\n"
            "  Second: unavailable: Second: no\n"
            "  First: failed: First: refused (HTTP 401, invalid_client)"
        )
    )
    assert refused.message == "First: refused (HTTP 401, invalid_client)"  # the member's error is intact
    assert third.calls == []


def test_a_protocol_error_stops_too_and_keeps_its_fields() -> None:
    broken = ProtocolError("First: cannot read the reply: expires_in: bad", source="svc", field="expires_in")
    error = failure(ChainedTokenCredential(First(broken), Second(token("t"))))
    assert isinstance(error, ProtocolError)
    assert (error.source, error.field, error.__cause__) == ("svc", "expires_in", broken)
    assert error.attempts == (("First", "failed", broken.message),)  # type: ignore[attr-defined]


def test_a_nested_chain_that_finds_nothing_falls_through() -> None:
    inner = ChainedTokenCredential(First(unavailable("First: no")))
    outer = ChainedTokenCredential(inner, Second(unavailable("Second: no")))
    error = failure(outer)
    assert str(error) == (
        "ChainedTokenCredential could not get a token. Attempts, in order:\n"
        "  ChainedTokenCredential: unavailable: ChainedTokenCredential could not get a token. "
        "Attempts, in order:\n"
        "    First: unavailable: First: no\n"
        "  Second: unavailable: Second: no"
    )


# -- the remembered member and the re-walk --


def test_the_remembered_member_is_tried_first() -> None:
    first = First(unavailable("First: no"), token("first-now"))
    second = Second(token("s1", now=NOW), token("s2", now=LATER))
    chain = ChainedTokenCredential(first, second)
    assert get(chain).token == "s1"
    assert get(chain, LATER).token == "s2"  # First would serve now, but Second is remembered
    assert len(first.calls) == 1
    assert chain.selected == "Second"


def test_a_remembered_member_turning_unavailable_is_walked_around() -> None:
    first = First(unavailable("First: no"), token("f2", now=LATER))
    second = Second(token("s1"), unavailable("Second: gone"))
    chain = ChainedTokenCredential(first, second, Third())
    assert get(chain).token == "s1"
    assert get(chain, LATER).token == "f2"
    assert chain.selected == "First"


def test_a_remembered_tool_that_fails_is_walked_around(caplog: pytest.LogCaptureFixture) -> None:
    tool = Tool(token("az1"), DeveloperToolError("Tool: exited with 2", tool="az", returncode=2))
    second = Second(token("s2", now=LATER))
    chain = ChainedTokenCredential(tool, second)
    with caplog.at_level(logging.INFO, logger="azid.chains"):
        assert get(chain).token == "az1"
        assert get(chain, LATER).token == "s2"
    assert chain.selected == "Second"
    assert [r.getMessage() for r in caplog.records] == [
        "ChainedTokenCredential: Tool served the token",
        "ChainedTokenCredential: Second served the token",
    ]


def test_other_errors_of_the_remembered_member_propagate() -> None:
    refused = AuthError("Second: refused", status=400)
    first = First(unavailable("First: no"), token("unused"))
    chain = ChainedTokenCredential(first, Second(token("s1"), refused))
    get(chain)
    error = failure(chain, LATER)
    assert isinstance(error, AuthError)
    assert error.__cause__ is refused
    assert error.attempts == (("Second", "failed", "Second: refused"),)
    assert len(first.calls) == 1  # not walked
    assert chain.selected is None


def test_when_nothing_serves_any_more_the_memory_is_cleared() -> None:
    chain = ChainedTokenCredential(First(token("f1"), unavailable("First: gone")), Second(unavailable("no")))
    get(chain)
    error = failure(chain, LATER)
    assert [a[0] for a in error.attempts] == ["First", "Second"]  # type: ignore[attr-defined]
    assert chain.selected is None


def test_a_member_refresh_failure_serves_its_old_token() -> None:
    # §7.2 inside the chain: the member's cache falls back, so does the chain's.
    first = First(token("old"), AuthError("First: refused", status=500))
    chain = ChainedTokenCredential(first)
    get(chain)
    assert get(chain, NOW + 3400).token == "old"  # past expires_on - 300, before expires_on


# -- options, pickling --


def test_the_chain_checks_scopes_and_claims_before_any_member() -> None:
    first = First(token("t"))
    chain = ChainedTokenCredential(first)
    with pytest.raises(ConfigError, match=r"^ChainedTokenCredential: scopes is invalid"):
        chain.cache_key(TokenCall(("a b",), None, None, False))
    with pytest.raises(ConfigError, match=r"^ChainedTokenCredential: claims is invalid"):
        chain.cache_key(TokenCall((SCOPE,), "[]", None, True))
    assert chain.cache_key(TokenCall(("b", "a", "b"), None, "t1", True)) == (("a", "b"), "t1", True, "chain")
    assert first.calls == []


def test_pickling_drops_the_cache_and_the_memory() -> None:
    chain = ChainedTokenCredential(EnvironmentCredential(env={}), ManagedIdentityCredential(env={}))
    chain._selected = 1
    chain.token_cache.store(chain.cache_key(TokenCall((SCOPE,), None, None, False)), token("t"), NOW)
    copy = pickle.loads(pickle.dumps(chain))
    assert copy.selected is None
    assert len(copy.token_cache) == 0
    assert [type(m).__name__ for m in copy.credentials] == [
        "EnvironmentCredential",
        "ManagedIdentityCredential",
    ]
    assert repr(copy) == (
        "ChainedTokenCredential(EnvironmentCredential(unavailable), ManagedIdentityCredential(source='imds'))"
    )


# -- secrets --

SECRET = "Sup3r-Secret-Value~0123456789"
SECRET_ENV = {"AZURE_TENANT_ID": "tenant-a", "AZURE_CLIENT_ID": "client-a", "AZURE_CLIENT_SECRET": SECRET}


def test_no_secret_in_the_final_error() -> None:
    body = json.dumps(
        {
            "error": "invalid_client",
            "error_description": f"AADSTS7000215: Invalid client secret provided: {SECRET}",
            "error_codes": [7000215],
        }
    ).encode()
    chain = ChainedTokenCredential(EnvironmentCredential(env=SECRET_ENV), First(token("never")))
    seen: list[object] = []

    def answer(effect: object) -> Reply:
        seen.append(effect)
        assert isinstance(effect, HttpRequest)
        return HttpResponse(401, (("Content-Type", "application/json"),), body)

    with pytest.raises(AuthError) as caught:
        run(acquire_alone(chain, TokenCall((SCOPE,), None, None, False), NOW), answer)
    error = caught.value
    assert len(seen) == 1
    assert error.status == 401
    assert error.error_codes == (7000215,)
    assert "EnvironmentCredential" in str(error)
    assert "****" in str(error)
    text = repr(vars(error)) + str(error) + repr(error.attempts)
    assert SECRET not in text


def test_member_effects_pass_through() -> None:
    class Reader(Member):
        def fetch_flow(self, call: TokenCall, key: CacheKey, now: float) -> Flow[AccessTokenInfo]:
            reply = yield ReadFile("/x", max_bytes=1)
            assert reply == FileContent(b"x", 1, 5)
            return token("read")

    seen: list[object] = []

    def answer(effect: object) -> Reply:
        seen.append(effect)
        return FileContent(b"x", 1, 5)

    chain = ChainedTokenCredential(Reader())
    assert run(acquire_alone(chain, TokenCall((SCOPE,), None, None, False), NOW), answer).token == "read"
    assert seen == [ReadFile("/x", max_bytes=1)]


def test_member_report_str() -> None:
    report = MemberReport("X", True, False, "why", ("a", "b"))
    assert str(report) == "X: not configured: why; a; b"
    assert str(MemberReport("Y", False, False, "off")) == "Y: excluded: off"


# -- DefaultAzureCredential: members, order, options (§6.2) --

ALL = [
    "EnvironmentCredential",
    "WorkloadIdentityCredential",
    "ManagedIdentityCredential",
    "AzureCliCredential",
    "AzurePowerShellCredential",
    "AzureDeveloperCliCredential",
]
FLAGS = [
    "exclude_environment_credential",
    "exclude_workload_identity_credential",
    "exclude_managed_identity_credential",
    "exclude_cli_credential",
    "exclude_powershell_credential",
    "exclude_developer_cli_credential",
]
TOKEN_FILE = "/var/run/secrets/azure/tokens/azure-identity-token"
WORKLOAD_ENV = {
    "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com/",
    "AZURE_TENANT_ID": "72f988bf-0000-4000-8000-00000000beef",
    "AZURE_CLIENT_ID": "0a1b2c3d-0000-4000-8000-0000000000c1",
    "AZURE_FEDERATED_TOKEN_FILE": TOKEN_FILE,
}


def names(chain: ChainedTokenCredential) -> list[str]:
    return [_chain_name(member) for member in chain.credentials]


def _chain_name(member: object) -> str:
    from azid_core.chains import _name

    return _name(member)


def dac(env: dict[str, str] | None = None, /, **options: Any) -> DefaultAzureCredential:
    return DefaultAzureCredential(env=env or {}, platform="linux", **options)


def test_dac_members_in_order() -> None:
    chain = dac()
    assert names(chain) == ALL
    assert [type(m).__name__ for m in chain.credentials] == [
        "EnvironmentCredential",
        "_Placeholder",  # WorkloadIdentity without its variables
        "ManagedIdentityCredential",
        "AzureCliCredential",
        "AzurePowerShellCredential",
        "AzureDeveloperCliCredential",
    ]
    assert [getattr(m, "developer_tool", False) for m in chain.credentials] == [False] * 3 + [True] * 3


@pytest.mark.parametrize("flag", FLAGS)
def test_each_exclude_flag_removes_its_member(flag: str) -> None:
    expected = [name for name, f in zip(ALL, FLAGS, strict=True) if f != flag]
    assert names(dac(**{flag: True})) == expected
    assert names(dac(**{flag: False})) == ALL


def test_interactive_browser_is_excluded_by_default_and_a_placeholder_when_asked_for() -> None:
    chain = dac(exclude_interactive_browser_credential=False, **dict.fromkeys(FLAGS, True))
    assert names(chain) == ["InteractiveBrowserCredential"]
    error = failure_of(chain)
    assert str(error) == (
        "DefaultAzureCredential could not get a token. Attempts, in order:\n"
        "  InteractiveBrowserCredential: unavailable: InteractiveBrowserCredential: azid has no "
        "interactive browser sign-in yet (PROTOCOL.md §3.2)"
    )


def test_ignored_options_are_accepted() -> None:
    chain = dac(
        exclude_shared_token_cache_credential=True,
        exclude_visual_studio_code_credential=True,
        exclude_broker_credential=True,
        interactive_browser_client_id="04b07795-8ddb-461a-bbee-02f9e1bf7b46",
        interactive_browser_tenant_id="organizations",
    )
    assert names(chain) == ALL


def test_every_member_excluded_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        dac(**dict.fromkeys(FLAGS, True))
    assert str(caught.value) == (
        "DefaultAzureCredential: every credential is excluded: exclude_environment_credential=True, "
        "exclude_workload_identity_credential=True, exclude_managed_identity_credential=True, "
        "exclude_cli_credential=True, exclude_powershell_credential=True, "
        "exclude_developer_cli_credential=True, exclude_interactive_browser_credential defaults to True"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("dev", ["AzureCliCredential", "AzurePowerShellCredential", "AzureDeveloperCliCredential"]),
        (" PROD ", ["EnvironmentCredential", "WorkloadIdentityCredential", "ManagedIdentityCredential"]),
        ("EnvironmentCredential", ["EnvironmentCredential"]),
        ("workloadidentitycredential", ["WorkloadIdentityCredential"]),
        ("managedidentitycredential", ["ManagedIdentityCredential"]),
        ("azureclicredential", ["AzureCliCredential"]),
        ("azurepowershellcredential", ["AzurePowerShellCredential"]),
        ("azuredeveloperclicredential", ["AzureDeveloperCliCredential"]),
        ("interactivebrowsercredential", ["InteractiveBrowserCredential"]),
        ("", ALL),
        ("   ", ALL),
    ],
)
def test_azure_token_credentials(value: str, expected: list[str]) -> None:
    assert names(dac({"AZURE_TOKEN_CREDENTIALS": value})) == expected


def test_explicit_exclude_flags_win_over_azure_token_credentials() -> None:
    env = {"AZURE_TOKEN_CREDENTIALS": "dev"}
    assert names(dac(env, exclude_cli_credential=True)) == [
        "AzurePowerShellCredential",
        "AzureDeveloperCliCredential",
    ]
    assert names(dac(env, exclude_environment_credential=False)) == [
        "EnvironmentCredential",
        "AzureCliCredential",
        "AzurePowerShellCredential",
        "AzureDeveloperCliCredential",
    ]


def test_managed_identity_alone_disables_the_probe_and_the_workload_branch() -> None:
    env = {**WORKLOAD_ENV, "AZURE_TOKEN_CREDENTIALS": "managedidentitycredential"}
    (mi,) = dac(env).credentials
    assert isinstance(mi, ManagedIdentityCredential)
    assert (mi.source, mi._probe_option) == ("imds", False)
    (mi,) = dac(
        {**env, "AZURE_TOKEN_CREDENTIALS": "prod"}, exclude_workload_identity_credential=True
    ).credentials[1:]
    assert isinstance(mi, ManagedIdentityCredential)
    assert (mi.source, mi._probe_option) == ("imds", None)


def test_the_workload_branch_follows_the_workload_member() -> None:
    chain = dac(WORKLOAD_ENV)
    wi, mi = chain.credentials[1:3]
    assert isinstance(wi, WorkloadIdentityCredential)
    assert isinstance(mi, ManagedIdentityCredential)
    assert mi.source == "workload_identity"
    mi = dac(WORKLOAD_ENV, exclude_workload_identity_credential=True).credentials[1]
    assert isinstance(mi, ManagedIdentityCredential)
    assert mi.source == "imds"


def test_other_token_credentials_values_are_config_errors_listing_every_accepted_value() -> None:
    with pytest.raises(ConfigError) as caught:
        dac({"AZURE_TOKEN_CREDENTIALS": "Dev,Prod"})
    assert str(caught.value) == (
        "DefaultAzureCredential: AZURE_TOKEN_CREDENTIALS is invalid: 'dev,prod' is not one of dev, prod, "
        "environmentcredential, workloadidentitycredential, managedidentitycredential, azureclicredential, "
        "azurepowershellcredential, azuredeveloperclicredential, interactivebrowsercredential"
    )


@pytest.mark.parametrize("env", [{}, {"AZURE_TOKEN_CREDENTIALS": " "}])
def test_require_envvar_needs_azure_token_credentials(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"^DefaultAzureCredential: AZURE_TOKEN_CREDENTIALS is invalid: "):
        dac(env, require_envvar=True)
    assert names(dac({"AZURE_TOKEN_CREDENTIALS": "dev"}, require_envvar=True))[0] == "AzureCliCredential"


def test_managed_identity_client_id_defaults_to_azure_client_id_inherited() -> None:
    env = {"AZURE_CLIENT_ID": "client-from-env"}
    mi = dac(env).credentials[2]
    assert repr(mi) == "ManagedIdentityCredential(source='imds', client_id='client-from-env')"
    mi = dac(env, managed_identity_client_id=None).credentials[2]  # explicit None: system-assigned
    assert repr(mi) == "ManagedIdentityCredential(source='imds')"
    mi = dac(env, managed_identity_client_id="explicit").credentials[2]
    assert repr(mi) == "ManagedIdentityCredential(source='imds', client_id='explicit')"
    # Inherited, a selector Cloud Shell cannot take is dropped; given, it is an error.
    shell = {**env, "MSI_ENDPOINT": "http://localhost:50342/oauth2/token"}
    assert repr(dac(shell).credentials[2]) == "ManagedIdentityCredential(source='cloud_shell')"
    with pytest.raises(ConfigError, match=r"^ManagedIdentityCredential: client_id is invalid"):
        dac(shell, managed_identity_client_id="explicit")


def test_workload_identity_options() -> None:
    env = dict(WORKLOAD_ENV)
    wi = dac(env).credentials[1]
    assert isinstance(wi, WorkloadIdentityCredential)
    assert (wi._tenant_id, wi._client_id) == (env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"])
    wi = dac(env, managed_identity_client_id="mi-client").credentials[1]
    assert isinstance(wi, WorkloadIdentityCredential)
    assert wi._client_id == "mi-client"
    wi = dac(
        env,
        managed_identity_client_id="mi-client",
        workload_identity_client_id="wi-client",
        workload_identity_tenant_id="contoso.onmicrosoft.com",
    ).credentials[1]
    assert isinstance(wi, WorkloadIdentityCredential)
    assert (wi._tenant_id, wi._client_id) == ("contoso.onmicrosoft.com", "wi-client")


def test_incomplete_members_are_placeholders_and_report_unavailable() -> None:
    env = {k: v for k, v in WORKLOAD_ENV.items() if k != "AZURE_CLIENT_ID"}
    chain = dac(env, **dict.fromkeys(FLAGS[3:], True))
    error = failure_of(chain)
    assert str(error) == (
        "DefaultAzureCredential could not get a token. Attempts, in order:\n"
        "  EnvironmentCredential: unavailable: EnvironmentCredential: the environment configures no "
        "credential (set: AZURE_TENANT_ID; missing: AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, "
        "AZURE_CLIENT_CERTIFICATE_PATH, AZURE_USERNAME, AZURE_PASSWORD). Set AZURE_TENANT_ID, "
        "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH; or AZURE_CLIENT_ID, "
        "AZURE_USERNAME and AZURE_PASSWORD\n"
        "  WorkloadIdentityCredential: unavailable: WorkloadIdentityCredential: missing "
        "workload_identity_client_id or AZURE_CLIENT_ID\n"
        "  ManagedIdentityCredential: unavailable: ManagedIdentityCredential: client_id is invalid: the "
        "workload identity branch needs client_id or AZURE_CLIENT_ID"
    )
    assert isinstance(error, CredentialUnavailableError)


@pytest.mark.parametrize(
    ("env", "options", "match"),
    [
        ({}, {"request_timeout": 0}, r"^ManagedIdentityCredential: request_timeout is invalid"),
        (SECRET_ENV, {"authority": "ftp://x"}, r"^EnvironmentCredential: authority is invalid"),
        ({**WORKLOAD_ENV, "AZURE_TENANT_ID": "bad tenant"}, {}, r"^WorkloadIdentityCredential: tenant_id"),
        ({"IDENTITY_ENDPOINT": "nowhere", "IDENTITY_HEADER": "h"}, {}, r"IDENTITY_ENDPOINT is invalid"),
        (
            {"IDENTITY_ENDPOINT": "nowhere", "IDENTITY_HEADER": "h"},
            {"exclude_workload_identity_credential": True},
            r"IDENTITY_ENDPOINT is invalid",
        ),
        ({}, {"process_timeout": -1}, r"process_timeout is invalid"),
        ({}, {"managed_identity_client_id": ""}, r"^ManagedIdentityCredential: client_id is invalid"),
    ],
)
def test_invalid_values_raise_at_construction(
    env: dict[str, str], options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        dac(env, **options)


def test_authority_and_request_timeout_reach_the_entra_and_mi_members() -> None:
    chain = dac(
        {**SECRET_ENV, **WORKLOAD_ENV}, authority="https://login.microsoftonline.us", request_timeout=7
    )
    env, wi, mi = chain.credentials[:3]
    assert isinstance(env, EnvironmentCredential)
    assert isinstance(wi, WorkloadIdentityCredential)
    assert isinstance(mi, ManagedIdentityCredential)
    assert env._inner is not None
    assert (env._inner._authority, env._inner._request_timeout) == ("https://login.microsoftonline.us", 7.0)
    assert (wi._authority, wi._request_timeout) == ("https://login.microsoftonline.us", 7.0)
    assert mi._request_timeout == 7.0


def test_process_timeout_reaches_the_tools() -> None:
    for tool in dac(process_timeout=3).credentials[3:]:
        assert tool._timeout == 3.0  # type: ignore[attr-defined]


def test_developer_tools_credential() -> None:
    chain = DeveloperToolsCredential(tenant_id="contoso.onmicrosoft.com", process_timeout=4, env={})
    assert names(chain) == ["AzureCliCredential", "AzureDeveloperCliCredential"]
    for tool in chain.credentials:
        assert tool._timeout == 4.0  # type: ignore[attr-defined]
        assert tool._tenant_id == "contoso.onmicrosoft.com"  # type: ignore[attr-defined]


def failure_of(chain: ChainedTokenCredential) -> AzidError:
    def answer(effect: object) -> Reply:
        raise AssertionError(f"no effect expected, got {effect!r}")

    with pytest.raises(AzidError) as caught:
        run(acquire_alone(chain, TokenCall((SCOPE,), None, None, False), NOW), answer)
    return caught.value


# -- explain() --

NO_ENV = (
    "1. EnvironmentCredential: not configured: no complete group of variables; set: none; missing: "
    "AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, AZURE_USERNAME, "
    "AZURE_PASSWORD"
)
NO_WORKLOAD = (
    "2. WorkloadIdentityCredential: not configured: missing workload_identity_tenant_id or AZURE_TENANT_ID, "
    "workload_identity_client_id or AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE"
)
NO_TOKEN_FILE = "2. WorkloadIdentityCredential: not configured: missing AZURE_FEDERATED_TOKEN_FILE"
ARC_AGENT = "Azure Arc if /opt/azcmagent/bin/himds exists (looked for at the first request)"
IMDS = (
    "3. ManagedIdentityCredential: configured: source imds (nothing else detected); identity: "
    f"system-assigned; {ARC_AGENT}; IMDS probe first (1 s)"
)
IMDS_CLIENT_A = IMDS.replace("system-assigned", "client_id=client-a")
TOOLS = (
    "4. AzureCliCredential: configured: runs `az` at get_token (not looked for now); timeout 10 s\n"
    "5. AzurePowerShellCredential: configured: runs `pwsh` at get_token (not looked for now); timeout 10 s\n"
    "6. AzureDeveloperCliCredential: configured: runs `azd` at get_token (not looked for now); timeout 10 s"
)
NO_BROWSER = (
    "7. InteractiveBrowserCredential: excluded: exclude_interactive_browser_credential defaults to True"
)
CERT_ENV = {
    "AZURE_TENANT_ID": "tenant-a",
    "AZURE_CLIENT_ID": "client-a",
    "AZURE_CLIENT_CERTIFICATE_PATH": "/c.pem",
}
APP_SERVICE_ENV = {
    "IDENTITY_ENDPOINT": "http://127.0.0.1:41741/msi/token",
    "IDENTITY_HEADER": "Hdr-Secret-1",
}
ARC_ENV = {
    "IDENTITY_ENDPOINT": "http://localhost:40342/metadata/identity/oauth2/token",
    "IMDS_ENDPOINT": "http://localhost:40342",
}


def excluded_by(value: str, *numbers: int) -> list[str]:
    members = [*ALL, "InteractiveBrowserCredential"]
    return [f"{n}. {members[n - 1]}: excluded: AZURE_TOKEN_CREDENTIALS={value}" for n in numbers]


EXPLAINED = {
    "nothing set": ({}, [NO_ENV, NO_WORKLOAD, IMDS, TOOLS, NO_BROWSER]),
    "env secret": (
        SECRET_ENV,
        [
            "1. EnvironmentCredential: configured: client secret (ClientSecretCredential); set: "
            "AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET",
            NO_TOKEN_FILE,
            IMDS_CLIENT_A,
            TOOLS,
            NO_BROWSER,
        ],
    ),
    "env certificate": (
        CERT_ENV,
        [
            "1. EnvironmentCredential: configured: certificate (CertificateCredential); set: "
            "AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_CERTIFICATE_PATH",
            NO_TOKEN_FILE,
            IMDS_CLIENT_A,
            TOOLS,
            NO_BROWSER,
        ],
    ),
    "workload identity": (
        WORKLOAD_ENV,
        [
            "1. EnvironmentCredential: not configured: no complete group of variables; set: AZURE_TENANT_ID, "
            "AZURE_CLIENT_ID; missing: AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, AZURE_USERNAME, "
            "AZURE_PASSWORD",
            f"2. WorkloadIdentityCredential: configured: token file {TOKEN_FILE} (read at get_token); "
            "tenant_id=72f988bf-0000-4000-8000-00000000beef; client_id=0a1b2c3d-0000-4000-8000-0000000000c1",
            "3. ManagedIdentityCredential: configured: source workload_identity (from AZURE_AUTHORITY_HOST, "
            "AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE); identity: "
            "client_id=0a1b2c3d-0000-4000-8000-0000000000c1",
            TOOLS,
            NO_BROWSER,
        ],
    ),
    "App Service": (
        APP_SERVICE_ENV,
        [
            NO_ENV,
            NO_WORKLOAD,
            "3. ManagedIdentityCredential: configured: source app_service (from IDENTITY_ENDPOINT, "
            "IDENTITY_HEADER); identity: system-assigned",
            TOOLS,
            NO_BROWSER,
        ],
    ),
    "Arc": (
        ARC_ENV,
        [
            NO_ENV,
            NO_WORKLOAD,
            "3. ManagedIdentityCredential: configured: source arc (from IDENTITY_ENDPOINT, IMDS_ENDPOINT); "
            "identity: system-assigned",
            TOOLS,
            NO_BROWSER,
        ],
    ),
    "dev": (
        {"AZURE_TOKEN_CREDENTIALS": "dev"},
        [*excluded_by("dev", 1, 2, 3), TOOLS, *excluded_by("dev", 7)],
    ),
    "prod": (
        {"AZURE_TOKEN_CREDENTIALS": "Prod"},
        [NO_ENV, NO_WORKLOAD, IMDS, *excluded_by("prod", 4, 5, 6, 7)],
    ),
    "one name": (
        {"AZURE_TOKEN_CREDENTIALS": "managedidentitycredential", **WORKLOAD_ENV},
        [
            *excluded_by("managedidentitycredential", 1, 2),
            "3. ManagedIdentityCredential: configured: source imds (nothing else detected); identity: "
            f"client_id=0a1b2c3d-0000-4000-8000-0000000000c1; {ARC_AGENT}; no IMDS probe",
            *excluded_by("managedidentitycredential", 4, 5, 6, 7),
        ],
    ),
    "secret and certificate": (
        {**SECRET_ENV, "AZURE_CLIENT_CERTIFICATE_PATH": "/c.pem", "AZURE_USERNAME": "u@contoso.com"},
        [
            "1. EnvironmentCredential: configured: client secret (ClientSecretCredential); set: "
            "AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, "
            "AZURE_USERNAME; ignored: AZURE_CLIENT_CERTIFICATE_PATH, AZURE_USERNAME (the client secret group "
            "wins)",
            NO_TOKEN_FILE,
            IMDS_CLIENT_A,
            TOOLS,
            NO_BROWSER,
        ],
    ),
    "IDENTITY_ENDPOINT alone": (
        {"IDENTITY_ENDPOINT": "http://127.0.0.1:41741/msi/token"},
        [
            NO_ENV,
            NO_WORKLOAD,
            "3. ManagedIdentityCredential: not configured: IDENTITY_ENDPOINT is set but neither "
            "IDENTITY_HEADER (App Service, Service Fabric) nor IMDS_ENDPOINT (Azure Arc) is",
            TOOLS,
            NO_BROWSER,
        ],
    ),
    "pod identity endpoint, client id without tenant": (
        {"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9", "AZURE_CLIENT_ID": "c1"},
        [
            "1. EnvironmentCredential: not configured: no complete group of variables; set: AZURE_CLIENT_ID; "
            "missing: AZURE_TENANT_ID, AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, AZURE_USERNAME, "
            "AZURE_PASSWORD",
            "2. WorkloadIdentityCredential: not configured: missing workload_identity_tenant_id or "
            "AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE",
            "3. ManagedIdentityCredential: configured: source imds at "
            "http://127.0.0.1:9/metadata/identity/oauth2/token; identity: client_id=c1; no IMDS probe",
            TOOLS,
            NO_BROWSER,
        ],
    ),
    "username and password": (
        {"AZURE_CLIENT_ID": "c1", "AZURE_USERNAME": "u@contoso.com", "AZURE_PASSWORD": "Pa55-w0rd!"},
        [
            "1. EnvironmentCredential: configured: username and password (UsernamePasswordCredential); "
            "set: AZURE_CLIENT_ID, AZURE_USERNAME, AZURE_PASSWORD",
            "2. WorkloadIdentityCredential: not configured: missing workload_identity_tenant_id or "
            "AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE",
            IMDS.replace("system-assigned", "client_id=c1"),
            TOOLS,
            NO_BROWSER,
        ],
    ),
}


@pytest.mark.parametrize("case", list(EXPLAINED))
def test_explain(case: str) -> None:
    env, lines = EXPLAINED[case]
    if "AZURE_PASSWORD" in env:
        with pytest.warns(DeprecationWarning, match="UsernamePasswordCredential is deprecated"):
            explanation = dac(env).explain()
    else:
        explanation = dac(env).explain()
    assert str(explanation) == "\n".join(lines)
    assert [report.name for report in explanation] == [*ALL, "InteractiveBrowserCredential"]
    for secret in ("Hdr-Secret-1", "Pa55-w0rd!", SECRET):
        assert secret not in str(explanation)


def test_explain_is_data() -> None:
    explanation = dac(APP_SERVICE_ENV, exclude_cli_credential=True).explain()
    assert explanation[2] == MemberReport(
        "ManagedIdentityCredential",
        True,
        True,
        "source app_service (from IDENTITY_ENDPOINT, IDENTITY_HEADER)",
        ("identity: system-assigned",),
    )
    assert explanation[3] == MemberReport("AzureCliCredential", False, False, "exclude_cli_credential=True")
    assert [(r.tried, r.configured) for r in explanation] == [
        (True, False),
        (True, False),
        (True, True),
        (False, False),
        (True, True),
        (True, True),
        (False, False),
    ]


def test_explain_on_any_chain() -> None:
    inner = DeveloperToolsCredential(env={}, process_timeout=2)
    chain = ChainedTokenCredential(First(), inner, ManagedIdentityCredential(env={}, platform="darwin"))
    assert str(chain.explain()) == (
        "1. First: configured: constructed (nothing to check without I/O)\n"
        "2. DeveloperToolsCredential: configured: a chain of 2: AzureCliCredential, "
        "AzureDeveloperCliCredential\n"
        "3. ManagedIdentityCredential: configured: source imds (nothing else detected); identity: "
        "system-assigned; IMDS probe first (1 s)"
    )
    assert str(inner.explain()) == (
        "1. AzureCliCredential: configured: runs `az` at get_token (not looked for now); timeout 2 s\n"
        "2. AzureDeveloperCliCredential: configured: runs `azd` at get_token (not looked for now); "
        "timeout 2 s"
    )
    forced = ManagedIdentityCredential(imds_endpoint="http://127.0.0.1:9", imds_probe=True, env={})
    assert str(ChainedTokenCredential(forced).explain()).endswith(
        "identity: system-assigned; IMDS probe first (1 s)"
    )


def test_a_placeholder_is_unavailable_in_every_method() -> None:
    placeholder = dac().credentials[1]
    assert repr(placeholder) == "WorkloadIdentityCredential(unavailable)"
    assert len(placeholder.token_cache) == 0
    call = TokenCall((SCOPE,), None, None, False)
    with pytest.raises(CredentialUnavailableError, match=r"^WorkloadIdentityCredential: missing "):
        placeholder.cache_key(call)
    with pytest.raises(CredentialUnavailableError, match=r"^WorkloadIdentityCredential: missing "):
        placeholder.fetch_flow(call, ((SCOPE,), "", False, "x"), NOW)


def test_a_default_azure_credential_pickles_with_its_members_and_reasons() -> None:
    chain = dac(APP_SERVICE_ENV, exclude_cli_credential=True, exclude_interactive_browser_credential=False)
    copy = pickle.loads(pickle.dumps(chain))
    assert str(copy.explain()) == str(chain.explain())
    assert names(copy) == names(chain)
