"""Where Entra requests go: authority normalization and tenant IDs (PROTOCOL.md §1.1, §1.3).

Everything here runs at credential construction, so a bad value is a `ConfigError` before any
effect is yielded.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..wire import host_and_port, percent_encoded

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "AZURE_CHINA",
    "AZURE_GOVERNMENT",
    "AZURE_PUBLIC_CLOUD",
    "AzureAuthorityHosts",
    "check_tenant_id",
    "normalize_authority",
    "resolve_tenant",
    "token_url",
]

AZURE_PUBLIC_CLOUD = "login.microsoftonline.com"
AZURE_GOVERNMENT = "login.microsoftonline.us"
AZURE_CHINA = "login.chinacloudapi.cn"


class AzureAuthorityHosts:
    """The authority hosts of the Azure clouds, under azure-identity's names, for `authority=`.

    >>> ClientSecretCredential(tenant, client, secret, authority=AzureAuthorityHosts.AZURE_GOVERNMENT)
    """

    AZURE_PUBLIC_CLOUD = AZURE_PUBLIC_CLOUD
    AZURE_GOVERNMENT = AZURE_GOVERNMENT
    AZURE_CHINA = AZURE_CHINA


# Plain http is allowed only where no one else can listen: tests and local emulators (§1.1).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_TENANT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-"
_HOST_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-."
_IPV6 = re.compile(r"[0-9a-f:.]+(%[a-z0-9._~-]+)?", re.ASCII)


def normalize_authority(value: str | None, env: Mapping[str, str], *, owner: str) -> str:
    """The authority as `scheme://host[:port][/path]`: from `value`, else AZURE_AUTHORITY_HOST,
    else the public cloud (§1.1)."""
    if value is not None:
        name, raw = "authority", value
    elif env.get("AZURE_AUTHORITY_HOST"):
        name, raw = "AZURE_AUTHORITY_HOST", env["AZURE_AUTHORITY_HOST"]
    else:
        return "https://" + AZURE_PUBLIC_CLOUD

    def invalid(rule: str, *, show: bool = True) -> ConfigError:
        return ConfigError(f"{owner}: {name} is invalid: {rule}" + (f" (got {raw!r})" if show else ""))

    text = raw.strip()
    if "://" not in text:
        text = "https://" + text
    text = text.rstrip("/")
    try:
        parts = urlsplit(text)
        host, port = host_and_port(parts)
    except ValueError as exc:
        raise invalid("not a URL") from exc
    scheme = parts.scheme.lower()
    if not host:
        raise invalid("a host is required")
    if not (_is_host_name(host) or (":" in host and _IPV6.fullmatch(host))):
        raise invalid("the host is not a valid host name or IP address")
    if "@" in parts.netloc:  # urllib's username and password, each a parse of the netloc
        raise invalid("user information is not allowed", show=False)  # it may hold a password
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise invalid("a query or fragment is not allowed")
    if scheme != "https" and not (scheme == "http" and host in LOOPBACK_HOSTS):
        raise invalid("the scheme must be https (plain http only for localhost, 127.0.0.1 and ::1)")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{scheme}://{netloc}{parts.path}"


def _is_host_name(host: str) -> bool:
    """Dot-separated labels of `a-z`, digits, `_` and inner `-`, with an optional final dot (urllib
    lowercases the host): with `str` methods, which cost a third of what a regular expression does."""
    name = host[:-1] if host.endswith(".") else host
    return (
        bool(name)
        and not name.strip(_HOST_CHARS)
        and name[0] not in ".-"
        and name[-1] not in ".-"
        and ".." not in name
        and ".-" not in name
        and "-." not in name
    )


def check_tenant_id(tenant_id: str, *, owner: str, name: str = "tenant_id") -> str:
    """`tenant_id` if it is a valid tenant ID or domain (§1.3), else ConfigError."""
    # strip() leaves nothing exactly when every character is allowed.
    if (
        not isinstance(tenant_id, str)
        or not 0 < len(tenant_id) <= 256
        or tenant_id.strip(_TENANT_CHARS)
        or tenant_id.startswith("-")
    ):
        raise ConfigError(
            f"{owner}: {name} is invalid: use 1 to 256 letters, digits, '.' and '-', not starting "
            f"with '-' (got {tenant_id!r})"
        )
    return tenant_id


def resolve_tenant(
    configured: str,
    requested: str | None,
    *,
    allowed: Iterable[str],
    multitenant_disabled: bool,
    owner: str,
) -> str:
    """The tenant a call goes to (§1.3): the first matching rule wins."""
    if requested is None or requested == configured:
        return configured
    if configured.lower() == "adfs" or multitenant_disabled:
        return configured
    check_tenant_id(requested, owner=owner)
    allowed = tuple(allowed)
    if not configured or "*" in allowed or requested in allowed:
        return requested
    if configured == "organizations" and not allowed:
        return requested
    raise ConfigError(
        f"{owner}: tenant_id is invalid: the credential is configured for tenant {configured!r} and "
        f"tenant {requested!r} is not in additionally_allowed_tenants; add it there, or '*' for any tenant"
    )


def token_url(authority: str, tenant: str) -> str:
    """The v2.0 token endpoint of `tenant` under `authority` (§1.2); the authority's path is kept."""
    return f"{authority}/{percent_encoded(tenant)}/oauth2/v2.0/token"
