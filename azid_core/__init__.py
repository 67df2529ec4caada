"""azid_core: Microsoft Entra ID tokens as pure protocol logic.

Credentials here build requests as plain data and read replies into tokens; they never open a
socket, start a process, read a clock or the environment inside protocol logic. Wrap one in an
adapter (`azid_requests`, `azid_httpx`, `azid_trio`) to get tokens.

Names load on first use (PEP 562), so `import azid_core` costs almost nothing; `-X importtime`
shows what each name pulls in.
"""

from __future__ import annotations

from importlib import import_module

# Not `typing.TYPE_CHECKING`: importing typing alone costs ~9 ms here. mypy honours the name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .chains import ChainedTokenCredential, DefaultAzureCredential, DeveloperToolsCredential
    from .devtools.az import AzureCliCredential
    from .devtools.azd import AzureDeveloperCliCredential
    from .devtools.pwsh import AzurePowerShellCredential
    from .drive import arun, run
    from .effects import (
        AwaitFlight,
        CommandResult,
        FileContent,
        FunctionCall,
        FunctionResult,
        HttpRequest,
        HttpResponse,
        ReadFile,
        RunCommand,
        Sleep,
    )
    from .entra.assertion import ClientAssertionCredential
    from .entra.authority import AzureAuthorityHosts
    from .entra.certificate import CertificateCredential, ClientCertificateCredential
    from .entra.confidential import ClientSecretCredential
    from .entra.environment import EnvironmentCredential
    from .entra.federated import AzurePipelinesCredential, WorkloadIdentityCredential
    from .entra.obo import OnBehalfOfCredential
    from .entra.password import UsernamePasswordCredential
    from .errors import (
        AuthenticationRequiredError,
        AuthError,
        AzidError,
        ConfigError,
        CredentialUnavailableError,
        DeveloperToolError,
        NotConfiguredError,
        ProtocolError,
        TransportError,
    )
    from .frontend import AsyncCredentialBase, CredentialBase
    from .managed_identity.credential import ManagedIdentityCredential
    from .tokens import AccessToken, AccessTokenInfo

_HOMES = {
    "ClientSecretCredential": "entra.confidential",
    "CertificateCredential": "entra.certificate",
    "ClientCertificateCredential": "entra.certificate",
    "ClientAssertionCredential": "entra.assertion",
    "WorkloadIdentityCredential": "entra.federated",
    "AzurePipelinesCredential": "entra.federated",
    "OnBehalfOfCredential": "entra.obo",
    "EnvironmentCredential": "entra.environment",
    "UsernamePasswordCredential": "entra.password",
    "ManagedIdentityCredential": "managed_identity.credential",
    "AzureCliCredential": "devtools.az",
    "ChainedTokenCredential": "chains",
    "DefaultAzureCredential": "chains",
    "DeveloperToolsCredential": "chains",
    "AzureDeveloperCliCredential": "devtools.azd",
    "AzurePowerShellCredential": "devtools.pwsh",
    "AzureAuthorityHosts": "entra.authority",
    "AccessToken": "tokens",
    "AccessTokenInfo": "tokens",
    "AzidError": "errors",
    "ConfigError": "errors",
    "CredentialUnavailableError": "errors",
    "NotConfiguredError": "errors",
    "AuthenticationRequiredError": "errors",
    "AuthError": "errors",
    "DeveloperToolError": "errors",
    "ProtocolError": "errors",
    "TransportError": "errors",
    "HttpRequest": "effects",
    "HttpResponse": "effects",
    "RunCommand": "effects",
    "CommandResult": "effects",
    "ReadFile": "effects",
    "FileContent": "effects",
    "FunctionCall": "effects",
    "FunctionResult": "effects",
    "Sleep": "effects",
    "AwaitFlight": "effects",
    "run": "drive",
    "arun": "drive",
    "CredentialBase": "frontend",
    "AsyncCredentialBase": "frontend",
}

__all__ = [
    "AccessToken",
    "AccessTokenInfo",
    "AsyncCredentialBase",
    "AuthError",
    "AuthenticationRequiredError",
    "AwaitFlight",
    "AzidError",
    "AzureAuthorityHosts",
    "AzureCliCredential",
    "AzureDeveloperCliCredential",
    "AzurePipelinesCredential",
    "AzurePowerShellCredential",
    "CertificateCredential",
    "ChainedTokenCredential",
    "ClientAssertionCredential",
    "ClientCertificateCredential",
    "ClientSecretCredential",
    "CommandResult",
    "ConfigError",
    "CredentialBase",
    "CredentialUnavailableError",
    "DefaultAzureCredential",
    "DeveloperToolError",
    "DeveloperToolsCredential",
    "EnvironmentCredential",
    "FileContent",
    "FunctionCall",
    "FunctionResult",
    "HttpRequest",
    "HttpResponse",
    "ManagedIdentityCredential",
    "NotConfiguredError",
    "OnBehalfOfCredential",
    "ProtocolError",
    "ReadFile",
    "RunCommand",
    "Sleep",
    "TransportError",
    "UsernamePasswordCredential",
    "WorkloadIdentityCredential",
    "arun",
    "run",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'azid_core' has no attribute {name!r}")
    value = getattr(import_module(f"azid_core.{home}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
