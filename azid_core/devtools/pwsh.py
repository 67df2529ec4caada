"""`AzurePowerShellCredential`: a token from Az.Accounts' `Get-AzAccessToken` (PROTOCOL.md §5).

What is Azure PowerShell's own: the script (§5.2's outline) passed as `-EncodedCommand`, the
Windows fallback from `pwsh` to `powershell`, exit 9009 as "not installed", its §5.3 rows, the
claims login command, CLIXML error text, and the `azsdk%<token>%<seconds>` line it prints. Every
excerpt is masked, `azsdk%` lines included (§10 item 7).
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING

from ..errors import CredentialUnavailableError, NotConfiguredError, protocol_error
from ..redact import MASK, excerpt
from .common import DeveloperToolCredential, claims_base64, resource_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ..errors import AzidError
    from ..tokens import AccessTokenInfo

__all__ = ["AzurePowerShellCredential", "clixml_errors", "connect_command", "script"]

NO_MODULE = "NO_AZ_ACCOUNT_MODULE"
NOT_LOGGED_IN = "Run Connect-AzAccount to login"
EXECUTION_POLICY = "AuthorizationManager check failed"
WINDOWS_NOT_FOUND = 9009  # cmd.exe's exit code for an unknown program

# §5.2. `{resource}` and `{tenant}` are single-quoted literals; the §5.1 allow-lists leave no quote
# in them. Az.Accounts 2.17 to 4.x returns a SecureString only when asked, 5.0 and later always.
_SCRIPT = """$ErrorActionPreference = 'Stop'
[version]$minimum = '2.2.0'
$module = Import-Module Az.Accounts -MinimumVersion $minimum -PassThru -ErrorAction SilentlyContinue
if (-not $module) {{
    Write-Output '{no_module}'
    exit 0
}}
$parameters = @{{ ResourceUrl = '{resource}'; WarningAction = 'Ignore' }}
$tenant = '{tenant}'
if ($tenant.Length -gt 0) {{ $parameters['TenantId'] = $tenant }}
if ($module.Version -ge [version]'2.17.0' -and $module.Version -lt [version]'5.0.0') {{
    $parameters['AsSecureString'] = $true
}}
$result = Get-AzAccessToken @parameters
$token = $result.Token
if ($token -is [System.Security.SecureString]) {{
    if ($PSVersionTable.PSVersion.Major -lt 7) {{
        $bstr = [System.Runtime.InteropServices.Marshal]::SecureStringToBSTR($token)
        try {{ $token = [System.Runtime.InteropServices.Marshal]::PtrToStringBSTR($bstr) }}
        finally {{ [System.Runtime.InteropServices.Marshal]::ZeroFreeBSTR($bstr) }}
    }} else {{
        $token = $token | ConvertFrom-SecureString -AsPlainText
    }}
}}
Write-Output "`nazsdk%$($token)%$($result.ExpiresOn.ToUnixTimeSeconds())`n"
"""

_CLIXML_ERROR = re.compile(r'<S S="Error">(.*?)</S>', re.DOTALL)
_ANSI = re.compile(r"_x001B_\[[0-9;]*m")
_ESCAPED = re.compile(r"_x([0-9A-Fa-f]{4})_")
_XML_ENTITIES = {"&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'", "&amp;": "&"}
_XML_ENTITY = re.compile("|".join(_XML_ENTITIES))
_TOKEN_LINE = re.compile(r"azsdk%\S*")
_SECONDS = re.compile(r"[0-9]{1,15}", re.ASCII)


def script(resource: str, tenant: str) -> str:
    """The PowerShell script that prints the token line (§5.2)."""
    return _SCRIPT.format(no_module=NO_MODULE, resource=resource, tenant=tenant)


def connect_command(claims: str, tenant: str) -> str:
    """§5.3: `Connect-AzAccount -ClaimsChallenge <b64> [-Tenant <t>]`."""
    tenant_part = f" -Tenant {tenant}" if tenant else ""
    return f"Connect-AzAccount -ClaimsChallenge {claims_base64(claims)}{tenant_part}"


def clixml_errors(stderr: str) -> str:
    """The error text of PowerShell's CLIXML stderr: the `<S S="Error">` texts, newlines
    (`_x000D__x000A_`) and other `_xHHHH_` escapes decoded, colour codes (`_x001B_[…m`) dropped.
    Text that is not CLIXML is returned as it is."""
    if not stderr.lstrip().startswith("#< CLIXML"):
        return stderr
    text = "".join(_CLIXML_ERROR.findall(stderr))
    text = _ANSI.sub("", text).replace("_x000D__x000A_", "\n")
    text = _ESCAPED.sub(lambda m: chr(int(m[1], 16)), text)
    return _XML_ENTITY.sub(lambda m: _XML_ENTITIES[m[0]], text)


class AzurePowerShellCredential(DeveloperToolCredential):
    """The account signed in to Azure PowerShell (`Connect-AzAccount`), through Az.Accounts 2.2.0 or
    later and PowerShell 7 (`pwsh`), or Windows PowerShell when `pwsh` is missing on Windows.

    One scope; `tenant_id=""` uses the context's tenant. Tokens are cached (§7);
    `cache_tokens=False` runs PowerShell on every call.

    >>> core = AzurePowerShellCredential()
    """

    tool = "pwsh"
    label = "Azure PowerShell"
    missing = "PowerShell not installed"

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

    def _programs(self) -> tuple[str, ...]:
        if self._tool_path is None and self._platform == "win32":
            return ("pwsh", "powershell")  # §5.1: Windows PowerShell when PowerShell 7 is missing
        return super()._programs()

    def _not_installed(self, code: int) -> bool:
        return code == WINDOWS_NOT_FOUND and self._platform == "win32"

    def _args(self, scopes: tuple[str, ...], tenant: str, claims: str | None) -> tuple[str, ...]:
        if claims is not None:
            command = connect_command(claims, tenant)
            raise NotConfiguredError(
                f"{type(self).__name__} (pwsh): the request needs claims Get-AzAccessToken cannot pass "
                f"on; run `{command}`, then try again",
                login_command=command,
            )
        encoded = base64.b64encode(script(resource_of(scopes[0]), tenant).encode("utf-16-le")).decode("ascii")
        return ("-NoProfile", "-NonInteractive", "-EncodedCommand", encoded)

    def _shown(self, argv: tuple[str, ...]) -> str:
        return " ".join(argv[:-1]) + " …"  # the encoded script says nothing to a reader

    def _failure(self, code: int, stdout: str, stderr: str) -> AzidError | None:
        owner = type(self).__name__
        if NO_MODULE in stdout:  # the script exits 0 after saying so (§5.2)
            return CredentialUnavailableError(
                f"{owner}: the Az.Accounts module 2.2.0 or later is not installed; run "
                "`Install-Module Az.Accounts`"
            )
        if code == 0:
            return None
        output = stdout + clixml_errors(stderr)
        if NOT_LOGGED_IN in output:
            return NotConfiguredError(
                f"{owner} (pwsh): not signed in; run `Connect-AzAccount`", login_command="Connect-AzAccount"
            )
        if EXECUTION_POLICY in output:
            return CredentialUnavailableError(
                f"{owner}: the PowerShell execution policy does not allow the script "
                "(AuthorizationManager check failed)"
            )
        return None

    def _excerpt(self, stdout: str, stderr: str) -> str:
        text = clixml_errors(stderr).strip() or stdout.strip()
        return excerpt(_TOKEN_LINE.sub(f"azsdk%{MASK}", text))

    def _parse(self, stdout: str, now: float) -> AccessTokenInfo:
        owner = type(self).__name__
        chunk = next((part for part in stdout.split() if part.startswith("azsdk%")), None)
        if chunk is None:
            raise protocol_error(owner, self.tool, "stdout", "no azsdk% line")
        parts = chunk.split("%")
        if len(parts) != 3:
            raise protocol_error(owner, self.tool, "azsdk", "not azsdk%<token>%<seconds>")
        token = self._token(parts[1] or None, "token")
        if not _SECONDS.fullmatch(parts[2]):
            raise protocol_error(owner, self.tool, "expires_on", "not a whole number of seconds")
        return self._info(token, int(parts[2]), "expires_on", now)
