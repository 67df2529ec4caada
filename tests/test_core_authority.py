"""Authority normalization, tenant IDs and per-call tenant resolution (PROTOCOL.md §1.1-§1.3)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azid_core.entra import authority
from azid_core.entra.authority import (
    AZURE_CHINA,
    AZURE_GOVERNMENT,
    AZURE_PUBLIC_CLOUD,
    AzureAuthorityHosts,
    check_tenant_id,
    normalize_authority,
    resolve_tenant,
    token_url,
)
from azid_core.errors import ConfigError


def norm(value: str | None, env: dict[str, str] | None = None) -> str:
    return normalize_authority(value, env or {}, owner="TestCred")


def test_cloud_constants() -> None:
    assert AZURE_PUBLIC_CLOUD == "login.microsoftonline.com"
    assert AZURE_GOVERNMENT == "login.microsoftonline.us"
    assert AZURE_CHINA == "login.chinacloudapi.cn"
    hosts = (AzureAuthorityHosts.AZURE_PUBLIC_CLOUD, AzureAuthorityHosts.AZURE_GOVERNMENT)
    assert (*hosts, AzureAuthorityHosts.AZURE_CHINA) == (AZURE_PUBLIC_CLOUD, AZURE_GOVERNMENT, AZURE_CHINA)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (AzureAuthorityHosts.AZURE_PUBLIC_CLOUD, "https://login.microsoftonline.com/t/oauth2/v2.0/token"),
        (AzureAuthorityHosts.AZURE_GOVERNMENT, "https://login.microsoftonline.us/t/oauth2/v2.0/token"),
        (AzureAuthorityHosts.AZURE_CHINA, "https://login.chinacloudapi.cn/t/oauth2/v2.0/token"),
    ],
)
def test_each_cloud_host_is_a_valid_authority(host: str, expected: str) -> None:
    assert token_url(norm(host), "t") == expected
    assert token_url(norm(None, {"AZURE_AUTHORITY_HOST": host}), "t") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # §1.1 vectors
        ("login.microsoftonline.us", "https://login.microsoftonline.us"),
        ("https://login.contoso.local/", "https://login.contoso.local"),
        ("http://127.0.0.1:8443", "http://127.0.0.1:8443"),
        # whitespace and trailing slashes stripped
        ("  https://login.microsoftonline.com//  ", "https://login.microsoftonline.com"),
        # scheme and host lower-cased; the path is kept as written
        ("HTTPS://Login.MicrosoftOnline.COM/Adfs/Path/", "https://login.microsoftonline.com/Adfs/Path"),
        ("login.chinacloudapi.cn:443", "https://login.chinacloudapi.cn:443"),
        ("https://login.contoso.local/tenant/path", "https://login.contoso.local/tenant/path"),
        # http only for loopback names
        ("http://localhost", "http://localhost"),
        ("HTTP://LOCALHOST:8080/", "http://localhost:8080"),
        ("http://127.0.0.1", "http://127.0.0.1"),
        ("http://[::1]:8443", "http://[::1]:8443"),
        ("https://[2001:db8::1]:8443/x", "https://[2001:db8::1]:8443/x"),
        ("https://host:", "https://host"),
    ],
)
def test_normalize_authority_vectors(value: str, expected: str) -> None:
    assert norm(value) == expected


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("http://insecure", "scheme must be https"),
        ("http://login.microsoftonline.com", "scheme must be https"),
        ("http://127.0.0.2", "scheme must be https"),
        ("ftp://login.microsoftonline.com", "scheme must be https"),
        ("https://user@login.microsoftonline.com", "user information is not allowed"),
        ("https://user:pw@login.microsoftonline.com", "user information is not allowed"),
        ("https://:pw@login.microsoftonline.com", "user information is not allowed"),
        ("https://@login.microsoftonline.com", "user information is not allowed"),
        ("https://login.microsoftonline.com?x=1", "query or fragment"),
        ("https://login.microsoftonline.com/path?", "query or fragment"),
        ("https://login.microsoftonline.com#frag", "query or fragment"),
        ("https://login.microsoftonline.com/#", "query or fragment"),
        ("", "a host is required"),
        ("   ", "a host is required"),
        ("https:///path", "a host is required"),
        ("https://host:99999", "not a URL"),
        ("https://host:port", "not a URL"),
        ("https://[::1", "not a URL"),
        ("https://%41", "not a valid host name"),
        ("https://a b", "not a valid host name"),
        ("https://-login.test", "not a valid host name"),
        ("https://login..test", "not a valid host name"),
    ],
)
def test_normalize_authority_rejections(value: str, rule: str) -> None:
    with pytest.raises(ConfigError, match=rule) as info:
        norm(value)
    assert str(info.value).startswith("TestCred: authority is invalid: ")
    assert isinstance(info.value, ValueError)


def test_default_is_the_public_cloud() -> None:
    assert norm(None) == "https://login.microsoftonline.com"
    assert norm(None, {"AZURE_AUTHORITY_HOST": ""}) == "https://login.microsoftonline.com"
    assert norm(None, {"OTHER": "login.microsoftonline.us"}) == "https://login.microsoftonline.com"


def test_env_authority_host_is_used_and_normalized() -> None:
    env = {"AZURE_AUTHORITY_HOST": "Login.MicrosoftOnline.US/"}
    assert norm(None, env) == "https://login.microsoftonline.us"


def test_explicit_option_beats_env() -> None:
    env = {"AZURE_AUTHORITY_HOST": "login.chinacloudapi.cn"}
    assert norm("login.microsoftonline.us", env) == "https://login.microsoftonline.us"
    # The option wins even when the env value is bad.
    assert norm("login.microsoftonline.us", {"AZURE_AUTHORITY_HOST": "http://bad"}) == (
        "https://login.microsoftonline.us"
    )


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        norm(None, {"AZURE_AUTHORITY_HOST": "http://insecure"})
    assert str(info.value).startswith("TestCred: AZURE_AUTHORITY_HOST is invalid: the scheme must be https")


@pytest.mark.parametrize(
    "value",
    [
        "https://admin:hunter2-p4ss@login.microsoftonline.com",
        "admin:hunter2-p4ss@login.microsoftonline.com/",
        "https://:hunter2-p4ss@login.microsoftonline.com:443/path",
    ],
)
def test_userinfo_password_is_not_echoed(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        norm(value)
    assert str(info.value) == "TestCred: authority is invalid: user information is not allowed"
    with pytest.raises(ConfigError) as info:
        norm(None, {"AZURE_AUTHORITY_HOST": value})
    assert str(info.value) == "TestCred: AZURE_AUTHORITY_HOST is invalid: user information is not allowed"


def test_other_rejections_still_show_the_value() -> None:
    with pytest.raises(ConfigError) as info:
        norm("http://insecure.example/")
    assert str(info.value).endswith("(got 'http://insecure.example/')")


@pytest.mark.parametrize(
    "value", ["https://", "http://", "HTTPS://", "https:///", "  https://  ", "https:////"]
)
def test_scheme_without_host_is_rejected(value: str) -> None:
    # The trailing slashes are stripped after the scheme is added, so "https://" is never read as a
    # host named "https".
    with pytest.raises(ConfigError) as info:
        norm(value)
    assert str(info.value) == f"TestCred: authority is invalid: a host is required (got {value!r})"


# -- tenant IDs --


@pytest.mark.parametrize(
    "tenant",
    [
        "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "contoso.onmicrosoft.com",
        "organizations",
        "common",
        "adfs",
        "a",
        "A.b-C",
        "x" * 256,
    ],
)
def test_check_tenant_id_accepts(tenant: str) -> None:
    assert check_tenant_id(tenant, owner="TestCred") == tenant


@pytest.mark.parametrize(
    "tenant", ["", "-tenant", "ten ant", "tenant/..", "tenant?x", "x" * 257, "tenant\n", "tenänt", "t_1"]
)
def test_check_tenant_id_rejects(tenant: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_tenant_id(tenant, owner="TestCred")
    assert str(info.value).startswith("TestCred: tenant_id is invalid: ")


# The rule as first written, a regular expression; check_tenant_id now uses str methods.
_TENANT_RULE = re.compile(r"[A-Za-z0-9.-]{1,256}")


@given(st.text(alphabet="aZ09.-_ /ä", max_size=300) | st.text())
def test_check_tenant_id_accepts_exactly_what_the_rule_does(tenant: str) -> None:
    allowed = bool(_TENANT_RULE.fullmatch(tenant)) and not tenant.startswith("-")
    try:
        check_tenant_id(tenant, owner="TestCred")
    except ConfigError:
        assert not allowed
    else:
        assert allowed


# The host-name rule as first written; normalize_authority now checks it with str methods.
_HOST_NAME_RULE = re.compile(
    r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?", re.ASCII
)


@given(st.text(alphabet="az09_-.", max_size=12) | st.text(alphabet="a-.:Aü ", max_size=6) | st.text())
def test_host_names_are_accepted_exactly_as_the_rule_does(host: str) -> None:
    assert authority._is_host_name(host) == bool(_HOST_NAME_RULE.fullmatch(host))


@pytest.mark.parametrize("host", ["a", "a.", "a-b.c_d", "127.0.0.1", "x1.y2.z3."])
def test_host_names_the_rule_accepts(host: str) -> None:
    assert authority._is_host_name(host)


@pytest.mark.parametrize("host", ["", ".", "a..", ".a", "-a", "a-", "a.-b", "a-.b", "a..b", "A", "ä", "a b"])
def test_host_names_the_rule_refuses(host: str) -> None:
    assert not authority._is_host_name(host)


def test_check_tenant_id_rejects_non_strings_and_names_the_option() -> None:
    with pytest.raises(ConfigError, match=r"^TestCred: tenant_id is invalid"):
        check_tenant_id(None, owner="TestCred")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^TestCred: additionally_allowed_tenants is invalid"):
        check_tenant_id("bad tenant", owner="TestCred", name="additionally_allowed_tenants")


# -- resolve_tenant: the rules of §1.3, in order --


def resolve(
    configured: str,
    requested: str | None,
    allowed: tuple[str, ...] = (),
    *,
    disabled: bool = False,
) -> str:
    return resolve_tenant(
        configured, requested, allowed=allowed, multitenant_disabled=disabled, owner="TestCred"
    )


def test_rule_1_none_or_equal_gives_configured() -> None:
    assert resolve("tenant-a", None) == "tenant-a"
    assert resolve("tenant-a", "tenant-a") == "tenant-a"
    # Rule 1 comes before the tenant ID check and before the disable flag.
    assert resolve("tenant-a", "tenant-a", disabled=True) == "tenant-a"
    assert resolve("", None) == ""


def test_rule_2_adfs_or_disabled_multitenant_gives_configured() -> None:
    assert resolve("adfs", "tenant-b") == "adfs"
    assert resolve("ADFS", "tenant-b", ("*",)) == "ADFS"
    assert resolve("tenant-a", "tenant-b", ("*",), disabled=True) == "tenant-a"
    # Rule 2 beats rule 3: a developer tool (configured "") with the flag keeps "".
    assert resolve("", "tenant-b", disabled=True) == ""
    # ...and a requested tenant that is not even valid is ignored under rule 2.
    assert resolve("tenant-a", "bad tenant", disabled=True) == "tenant-a"


def test_rule_3_empty_configured_gives_requested() -> None:
    assert resolve("", "tenant-b") == "tenant-b"


def test_rule_4_wildcard_or_listed_gives_requested() -> None:
    assert resolve("tenant-a", "tenant-b", ("*",)) == "tenant-b"
    assert resolve("tenant-a", "tenant-b", ("tenant-c", "tenant-b")) == "tenant-b"
    assert resolve("organizations", "tenant-b", ("tenant-b",)) == "tenant-b"


def test_rule_5_organizations_with_an_empty_list_gives_requested() -> None:
    assert resolve("organizations", "tenant-b") == "tenant-b"


def test_rule_6_otherwise_config_error_naming_tenant_and_option() -> None:
    with pytest.raises(ConfigError) as info:
        resolve("tenant-a", "tenant-b")
    message = str(info.value)
    assert message.startswith("TestCred: tenant_id is invalid: ")
    assert "'tenant-b'" in message
    assert "'tenant-a'" in message
    assert "additionally_allowed_tenants" in message
    # organizations with a non-empty list that does not name the tenant: rule 5 does not apply.
    with pytest.raises(ConfigError, match="additionally_allowed_tenants"):
        resolve("organizations", "tenant-b", ("tenant-c",))
    # Matching is exact (case-sensitive), like the configured comparison of rule 1.
    with pytest.raises(ConfigError):
        resolve("tenant-a", "Tenant-B", ("tenant-b",))


def test_requested_tenant_is_checked_before_rules_3_to_5() -> None:
    with pytest.raises(ConfigError, match="tenant_id is invalid: use 1 to 256"):
        resolve("", "bad tenant")
    with pytest.raises(ConfigError, match="tenant_id is invalid: use 1 to 256"):
        resolve("tenant-a", "-x", ("*",))


def test_allowed_may_be_any_iterable() -> None:
    assert (
        resolve_tenant(
            "tenant-a",
            "tenant-b",
            allowed=iter(["tenant-b"]),
            multitenant_disabled=False,
            owner="TestCred",
        )
        == "tenant-b"
    )


# -- token URL --


def test_token_url() -> None:
    assert token_url("https://login.microsoftonline.com", "tenant-a") == (
        "https://login.microsoftonline.com/tenant-a/oauth2/v2.0/token"
    )
    # The authority path (ADFS, emulators) is kept.
    assert token_url("https://login.contoso.local/adfs-root", "adfs") == (
        "https://login.contoso.local/adfs-root/adfs/oauth2/v2.0/token"
    )
    assert token_url("http://127.0.0.1:8443", "contoso.onmicrosoft.com") == (
        "http://127.0.0.1:8443/contoso.onmicrosoft.com/oauth2/v2.0/token"
    )
    # Whatever the tenant, it stays one path segment.
    assert token_url("https://h", "a/b?c") == "https://h/a%2Fb%3Fc/oauth2/v2.0/token"
