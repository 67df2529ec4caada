"""The azid error hierarchy (PROTOCOL.md §0.3, §8).

Every exception that leaves a flow, a parser or a credential is an `AzidError`. The classes say what
the caller can do about it: fix the call (`ConfigError`), try another credential
(`CredentialUnavailableError`), give up because the service said no (`AuthError`), report a bug in
the service's reply (`ProtocolError`). `TransportError` is raised only by adapters and always ends
up as the `__cause__` of one of the others.

Messages never contain secrets: whoever builds one masks service text first (see `redact`).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthError",
    "AuthenticationRequiredError",
    "AzidError",
    "ConfigError",
    "CredentialUnavailableError",
    "DeveloperToolError",
    "NotConfiguredError",
    "ProtocolError",
    "TransportError",
]


def _rebuild(cls: type[AzidError], args: tuple[Any, ...], state: dict[str, Any]) -> AzidError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class AzidError(Exception):
    """Base class of every error azid raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors carry keyword-only fields; rebuild from state so they pickle and `copy.copy` works
        # (single-flight waiters re-raise a copy of their leader's error, PROTOCOL.md §7.3).
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ConfigError(AzidError, ValueError):
    """The caller passed something invalid: an option, a scope, a tenant, an environment value."""


class CredentialUnavailableError(AzidError):
    """This credential cannot work here; a chain should try the next one."""

    def __init__(self, message: str, *, attempts: tuple[tuple[str, str, str], ...] = ()) -> None:
        super().__init__(message)
        self.attempts = attempts


class NotConfiguredError(CredentialUnavailableError):
    """The source exists but is not set up (not logged in, identity not assigned)."""

    def __init__(self, message: str, *, login_command: str | None = None) -> None:
        super().__init__(message)
        self.login_command = login_command


class AuthenticationRequiredError(CredentialUnavailableError):
    """Interactive authentication is needed and automatic sign-in is off."""

    def __init__(self, message: str, *, scopes: tuple[str, ...] = (), claims: str | None = None) -> None:
        super().__init__(message)
        self.scopes = scopes
        self.claims = claims


class AuthError(AzidError):
    """The token service refused the request (PROTOCOL.md §1.5)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        error_codes: tuple[int, ...] = (),
        description: str | None = None,
        trace_id: str | None = None,
        correlation_id: str | None = None,
        timestamp: str | None = None,
        request_id: str | None = None,
        claims: str | None = None,
        body_excerpt: str | None = None,
        attempts: tuple[tuple[str, str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.error_codes = error_codes
        self.description = description
        self.trace_id = trace_id
        self.correlation_id = correlation_id
        self.timestamp = timestamp
        self.request_id = request_id
        self.claims = claims
        self.body_excerpt = body_excerpt
        self.attempts = attempts


class DeveloperToolError(AuthError):
    """A developer tool (az, azd, pwsh) exited with an error we could not classify further."""

    def __init__(
        self, message: str, *, tool: str, returncode: int | None, stderr_excerpt: str | None = None
    ) -> None:
        super().__init__(message)
        self.tool = tool
        self.returncode = returncode
        self.stderr_excerpt = stderr_excerpt


class ProtocolError(AzidError):
    """A reply we cannot read: not JSON, no token, a bad expiry, a body over the size limit."""

    def __init__(self, message: str, *, source: str, field: str) -> None:
        super().__init__(message)
        self.source = source
        self.field = field


def protocol_error(owner: str, source: str, field: str, problem: str) -> ProtocolError:
    """The §8 message shape: `<Cred>: cannot read the <source> reply: <field>: <problem>`."""
    return ProtocolError(
        f"{owner}: cannot read the {source} reply: {field}: {problem}", source=source, field=field
    )


#: The failure kinds an adapter may report (PROTOCOL.md §0.1).
TRANSPORT_KINDS = frozenset(
    {
        "connect",  # nothing was sent: refused, DNS, connect timeout
        "tls",
        "pin_mismatch",
        "timeout",
        "closed",  # the peer reset or closed the connection mid-exchange
        "too_large",
        "proxy",
        "not_found",
        "spawn",
        "file_not_found",
        "file_error",
        "bind",
    }
)


class TransportError(AzidError):
    """An adapter could not carry out an effect. `kind` says how it failed (PROTOCOL.md §0.1)."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in TRANSPORT_KINDS:
            raise ValueError(f"unknown transport failure kind {kind!r}")
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.detail = message
