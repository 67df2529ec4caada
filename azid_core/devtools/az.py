"""`AzureCliCredential`: a token from `az account get-access-token` (PROTOCOL.md §5).

What is the Azure CLI's own: the argv with `--resource`, `--tenant` and `--subscription`, the added
`AZURE_CORE_NO_COLOR=true`, the "run az login" row of §5.3, the claims login command, and the
reply's two expiry fields: `expires_on` (epoch, az ≥ 2.54) wins; without it `expiresOn` is local
time without an offset, read through `naive_to_epoch` (the core reads no clock or time zone, so the
default comes from `blocking`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import NotConfiguredError, protocol_error
from ..redact import excerpt
from ..tokens import json_object
from .common import SUBSCRIPTION, DeveloperToolCredential, allowed_value, claims_base64, resource_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ..errors import AzidError
    from ..tokens import AccessTokenInfo

__all__ = ["AzureCliCredential", "az_login_command"]


def az_login_command(claims: str, tenant: str, scope: str) -> str:
    """§5.3: `az login --claims-challenge <b64> [--tenant <t>] --scope <scope>`."""
    tenant_part = f" --tenant {tenant}" if tenant else ""
    return f"az login --claims-challenge {claims_base64(claims)}{tenant_part} --scope {scope}"


class AzureCliCredential(DeveloperToolCredential):
    """The account signed in to the Azure CLI (`az login`).

    `tenant_id=""` uses az's default tenant; `subscription` picks the subscription whose tenant
    answers. Tokens are cached (once per scope and tenant, §7); `cache_tokens=False` runs az on
    every call. `naive_to_epoch` reads az's local-time `expiresOn` (only needed when az omits
    `expires_on`); the default uses this host's time zone.

    >>> core = AzureCliCredential(subscription="my-subscription")
    """

    tool = "az"
    label = "Azure CLI"
    missing = "Azure CLI not found on PATH"
    added_env = (("AZURE_CORE_NO_COLOR", "true"),)

    def __init__(
        self,
        *,
        tenant_id: str = "",
        subscription: str | None = None,
        additionally_allowed_tenants: Iterable[str] = (),
        process_timeout: float | None = None,
        tool_path: str | None = None,
        cache_tokens: bool = True,
        env: Mapping[str, str] | None = None,
        platform: str | None = None,
        naive_to_epoch: Callable[[str], float] | None = None,
    ) -> None:
        if subscription is not None:
            subscription = allowed_value(
                subscription,
                name="subscription",
                pattern=SUBSCRIPTION,
                rule="letters, digits, spaces and _ . -",
                owner=type(self).__name__,
            )
        self._subscription = subscription
        self._naive_to_epoch = naive_to_epoch
        super().__init__(
            tenant_id=tenant_id,
            additionally_allowed_tenants=additionally_allowed_tenants,
            process_timeout=process_timeout,
            tool_path=tool_path,
            cache_tokens=cache_tokens,
            env=env,
            platform=platform,
        )

    @property
    def _identity(self) -> str:
        return f"az:{self._subscription or ''}"

    def _args(self, scopes: tuple[str, ...], tenant: str, claims: str | None) -> tuple[str, ...]:
        if claims is not None:
            # az get-access-token cannot pass claims on: the user signs in again with them (§5.1).
            command = az_login_command(claims, tenant, scopes[0])
            raise NotConfiguredError(
                f"{type(self).__name__} (az): the request needs claims the Azure CLI cannot pass on; "
                f"run `{command}`, then try again",
                login_command=command,
            )
        args: tuple[str, ...] = ("account", "get-access-token", "--output", "json")
        args += ("--resource", resource_of(scopes[0]))
        if tenant:
            args += ("--tenant", tenant)
        if self._subscription is not None:
            args += ("--subscription", self._subscription)
        return args

    def _failure(self, code: int, stdout: str, stderr: str) -> AzidError | None:
        if code != 0 and ("az login" in stderr or "az account set" in stderr) and "AADSTS" not in stderr:
            return NotConfiguredError(
                f"{type(self).__name__} (az): not signed in, or no usable subscription; run `az login`: "
                f"{excerpt(stderr.strip())}",
                login_command="az login",
            )
        return None

    def _parse(self, stdout: str, now: float) -> AccessTokenInfo:
        owner = type(self).__name__
        body = json_object(stdout.encode("utf-8"))
        if body is None:
            raise protocol_error(owner, self.tool, "stdout", "not a JSON object")
        token = self._token(body.get("accessToken"), "accessToken")
        if "expires_on" in body:
            return self._info(token, body["expires_on"], "expires_on", now)
        if "expiresOn" not in body:
            raise protocol_error(owner, self.tool, "expires_on", "missing (and no expiresOn)")
        to_epoch = self._naive_to_epoch
        if to_epoch is None:
            from .. import blocking

            to_epoch = blocking.local_naive_to_epoch
        return self._info(token, body["expiresOn"], "expiresOn", now, naive_to_epoch=to_epoch)

    def _repr_fields(self) -> list[str]:
        fields = super()._repr_fields()
        if self._subscription is not None:
            fields.insert(1, f"subscription={self._subscription!r}")
        return fields
