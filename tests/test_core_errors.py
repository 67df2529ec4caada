"""The error hierarchy, its fields, pickling and copying (PROTOCOL.md §0.3, §8)."""

from __future__ import annotations

import copy
import pickle

import pytest

from azid_core.errors import (
    TRANSPORT_KINDS,
    AuthenticationRequiredError,
    AuthError,
    AzidError,
    ConfigError,
    CredentialUnavailableError,
    DeveloperToolError,
    NotConfiguredError,
    ProtocolError,
    TransportError,
    protocol_error,
)

ATTEMPTS = (("EnvironmentCredential", "unavailable", "not set"), ("ManagedIdentityCredential", "failed", "x"))

EXAMPLES: list[AzidError] = [
    AzidError("base"),
    ConfigError("Cred: tenant_id is invalid: rule"),
    CredentialUnavailableError("Chain: nothing worked", attempts=ATTEMPTS),
    NotConfiguredError("AzureCliCredential (az): not logged in", login_command="az login"),
    AuthenticationRequiredError("sign in", scopes=("a", "b"), claims='{"x":1}'),
    AuthError(
        "Cred: refused",
        status=401,
        error="invalid_client",
        error_codes=(7000215, 1),
        description="bad secret",
        trace_id="t",
        correlation_id="c",
        timestamp="ts",
        request_id="r",
        claims="{}",
        body_excerpt="body",
        attempts=ATTEMPTS,
    ),
    DeveloperToolError("Cred: `az account` exited with 1: x", tool="az", returncode=1, stderr_excerpt="x"),
    ProtocolError("Cred: cannot read the S reply: f: p", source="S", field="f"),
    TransportError("timeout", "read timed out"),
]


def test_hierarchy() -> None:
    assert issubclass(ConfigError, AzidError)
    assert issubclass(ConfigError, ValueError)
    assert issubclass(NotConfiguredError, CredentialUnavailableError)
    assert issubclass(AuthenticationRequiredError, CredentialUnavailableError)
    assert issubclass(DeveloperToolError, AuthError)
    for cls in (CredentialUnavailableError, AuthError, ProtocolError, TransportError):
        assert issubclass(cls, AzidError)
        assert not issubclass(cls, ValueError)
    assert issubclass(AzidError, Exception)


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_pickle_keeps_class_message_and_fields(error: AzidError) -> None:
    copied = pickle.loads(pickle.dumps(error))
    assert type(copied) is type(error)
    assert copied is not error
    assert str(copied) == str(error)
    assert copied.args == error.args
    assert copied.message == error.message
    assert vars(copied) == vars(error)


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_copy_keeps_class_message_and_fields(error: AzidError) -> None:
    for copied in (copy.copy(error), copy.deepcopy(error)):
        assert type(copied) is type(error)
        assert copied is not error
        assert str(copied) == str(error)
        assert vars(copied) == vars(error)


def test_pickle_after_raising_keeps_fields_and_drops_nothing_needed() -> None:
    try:
        raise AuthError("Cred: refused", status=400, error="invalid_request") from ValueError("cause")
    except AuthError as exc:
        copied = pickle.loads(pickle.dumps(exc))
    assert (copied.status, copied.error, str(copied)) == (400, "invalid_request", "Cred: refused")


def test_fields_and_defaults() -> None:
    plain = AuthError("m")
    assert (
        plain.status,
        plain.error,
        plain.error_codes,
        plain.description,
        plain.trace_id,
        plain.correlation_id,
        plain.timestamp,
        plain.request_id,
        plain.claims,
        plain.body_excerpt,
        plain.attempts,
    ) == (None, None, (), None, None, None, None, None, None, None, ())
    tool = DeveloperToolError("m", tool="azd", returncode=None)
    assert (tool.tool, tool.returncode, tool.stderr_excerpt, tool.status) == ("azd", None, None, None)
    assert CredentialUnavailableError("m").attempts == ()
    assert NotConfiguredError("m").login_command is None
    assert NotConfiguredError("m").attempts == ()
    required = AuthenticationRequiredError("m")
    assert (required.scopes, required.claims) == ((), None)
    assert str(AzidError("shown")) == "shown"
    assert AzidError("shown").args == ("shown",)


def test_protocol_error_shape() -> None:
    error = protocol_error("ManagedIdentityCredential", "IMDS", "expires_on", "missing")
    assert type(error) is ProtocolError
    assert str(error) == "ManagedIdentityCredential: cannot read the IMDS reply: expires_on: missing"
    assert (error.source, error.field) == ("IMDS", "expires_on")


def test_transport_kinds_are_those_of_the_spec() -> None:
    assert {
        "connect",
        "tls",
        "pin_mismatch",
        "timeout",
        "closed",
        "too_large",
        "proxy",
        "not_found",
        "spawn",
        "file_not_found",
        "file_error",
        "bind",
    } == TRANSPORT_KINDS


@pytest.mark.parametrize("kind", sorted(TRANSPORT_KINDS))
def test_transport_error_fields(kind: str) -> None:
    error = TransportError(kind, "what happened")
    assert (error.kind, error.detail) == (kind, "what happened")
    assert str(error) == f"{kind}: what happened"
    copied = pickle.loads(pickle.dumps(error))
    assert (type(copied), copied.kind, copied.detail, str(copied)) == (
        TransportError,
        kind,
        "what happened",
        str(error),
    )


@pytest.mark.parametrize("kind", ["", "Timeout", "refused", "dns", "connect ", "unknown"])
def test_transport_error_rejects_unknown_kinds(kind: str) -> None:
    with pytest.raises(ValueError, match="unknown transport failure kind"):
        TransportError(kind, "x")
