"""`AzureDeveloperCliCredential`: a token from `azd auth token` (PROTOCOL.md §5).

What is the Azure Developer CLI's own: one `--scope` per scope, `--tenant-id`, claims passed on as
`--claims <base64>`, the added `NO_COLOR=true`, its §5.3 rows (not logged in; `--claims` unknown
before azd 1.18.1), the excerpt from its JSON error lines, and the RFC 3339 `expiresOn`, read with
its `Z` or offset (§10 item 5: azure-identity reads a `Z` as local time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import CredentialUnavailableError, NotConfiguredError, protocol_error
from ..redact import excerpt
from ..tokens import json_object
from .common import DeveloperToolCredential, claims_base64

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ..errors import AzidError
    from ..tokens import AccessTokenInfo

__all__ = ["AzureDeveloperCliCredential"]

NOT_LOGGED_IN = "not logged in, run `azd auth login` to login"  # §5.3
CLAIMS_UNKNOWN = "unknown flag: --claims"  # §5.3: azd before 1.18.1


class AzureDeveloperCliCredential(DeveloperToolCredential):
    """The account signed in to the Azure Developer CLI (`azd auth login`).

    Takes any number of scopes; `tenant_id=""` uses azd's default tenant. Tokens are cached (§7);
    `cache_tokens=False` runs azd on every call.

    >>> core = AzureDeveloperCliCredential()
    """

    tool = "azd"
    label = "Azure Developer CLI"
    missing = "Azure Developer CLI not found on PATH"
    added_env = (("NO_COLOR", "true"),)
    one_scope = False

    def __init__(
        self,
        *,
        tenant_id: str = "",
        additionally_allowed_tenants: Iterable[str] = (),
        process_timeout: float | None = None,
        tool_path: str | None = None,
        cache_tokens: bool = True,
        env: Mapping[str, str] | None = None,
        platform: str | None = None,
    ) -> None:
        super().__init__(
            tenant_id=tenant_id,
            additionally_allowed_tenants=additionally_allowed_tenants,
            process_timeout=process_timeout,
            tool_path=tool_path,
            cache_tokens=cache_tokens,
            env=env,
            platform=platform,
        )

    def _args(self, scopes: tuple[str, ...], tenant: str, claims: str | None) -> tuple[str, ...]:
        args: tuple[str, ...] = ("auth", "token", "--output", "json", "--no-prompt")
        for scope in scopes:  # in the caller's order
            args += ("--scope", scope)
        if tenant:
            args += ("--tenant-id", tenant)
        if claims is not None:
            args += ("--claims", claims_base64(claims))
        return args

    def _failure(self, code: int, stdout: str, stderr: str) -> AzidError | None:
        if code == 0:
            return None
        output = stdout + stderr
        owner = type(self).__name__
        if NOT_LOGGED_IN in output and "AADSTS" not in output:
            return NotConfiguredError(
                f"{owner} (azd): not signed in; run `azd auth login`", login_command="azd auth login"
            )
        if CLAIMS_UNKNOWN in output:
            return CredentialUnavailableError(
                f"{owner}: this azd cannot pass claims on (--claims needs azd 1.18.1 or later); upgrade azd"
            )
        return None

    def _excerpt(self, stdout: str, stderr: str) -> str:
        """§5.3: the first JSON line's non-empty `error`, else the first non-empty `consoleMessage`
        `data.message`, else stderr."""
        lines = [json_object(line.encode("utf-8")) for line in (stdout + "\n" + stderr).splitlines()]
        objects = [line for line in lines if line is not None]
        for line in objects:
            error = line.get("error")
            if isinstance(error, str) and error.strip():
                return excerpt(error.strip())
        for line in objects:
            data = line.get("data")
            message = data.get("message") if isinstance(data, dict) else None
            if line.get("type") == "consoleMessage" and isinstance(message, str) and message.strip():
                return excerpt(message.strip())
        return super()._excerpt(stdout, stderr)

    def _parse(self, stdout: str, now: float) -> AccessTokenInfo:
        body = json_object(stdout.encode("utf-8"))
        if body is None:
            raise protocol_error(type(self).__name__, self.tool, "stdout", "not a JSON object")
        token = self._token(body.get("token"), "token")
        if "expiresOn" not in body:
            raise protocol_error(type(self).__name__, self.tool, "expiresOn", "missing")
        return self._info(token, body["expiresOn"], "expiresOn", now)
