"""Client assertions from user code: `ClientAssertionCredential`, and the step that asks a user's
function for an assertion, shared with other grants (PROTOCOL.md §2, §2.1).

The function is user code, so the core never calls it: the flow yields a `FunctionCall` and the
adapter calls it (and awaits the result in async adapters). What it returned, or raised, is judged
here.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..effects import FunctionCall, FunctionResult
from ..errors import AuthError, AzidError, ConfigError, TransportError
from ..redact import mask
from .confidential import EntraCredential, EntraForm

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ..effects import Flow

__all__ = ["JWT_BEARER", "AssertionSource", "ClientAssertionCredential", "assertion_form", "assertion_from"]

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # §2: `JWTB`


@runtime_checkable
class AssertionSource(Protocol):
    """A core object whose flow yields an assertion, in place of a user's function: e.g.
    `ManagedIdentityCredential(...).assertion(scope)`, so two credentials compose inside the core."""

    def assertion_flow(self, now: float) -> Flow[str]: ...


def assertion_from(
    function: Callable[[], object] | AssertionSource,
    *,
    owner: str,
    purpose: str = "assertion",
    option: str = "func",
    now: float | None = None,
) -> Flow[str]:
    """Call `function` (through the adapter) for an assertion, or run an `AssertionSource`'s flow
    (at flow time `now`, which it needs).

    Yields:  one FunctionCall; or the source's effects.
    Returns: the non-empty string it returned.
    Raises:  ConfigError naming `option` when it returns anything else. When it raises, an error
             naming `owner` with the user's exception as `__cause__`: an AzidError keeps its class
             (an unavailable source stays unavailable, so chains fall through), anything else is
             an AuthError. A source's AzidError is raised the same way.
    """
    if isinstance(function, AssertionSource):
        if now is None:
            raise AzidError(f"{owner}: the {purpose} source needs the flow's clock")
        try:
            return (yield from function.assertion_flow(now))
        except AzidError as exc:
            raise _renamed(exc, f"{owner}: the {purpose} could not be obtained: {exc}") from exc
    reply = yield FunctionCall(function, purpose)
    if not isinstance(reply, FunctionResult):
        raise AzidError(f"the adapter answered FunctionCall({purpose}) with {type(reply).__name__}")
    error = reply.error
    if error is not None:
        message = f"{owner}: the {purpose} function raised {type(error).__name__}: {mask(str(error))}"
        if isinstance(error, AzidError) and not isinstance(error, TransportError):
            raise _renamed(error, message) from error
        raise AuthError(message) from error
    value = reply.value
    if not isinstance(value, str) or not value:
        shown = "an empty string" if value == "" else type(value).__name__
        raise ConfigError(f"{owner}: {option} is invalid: it returned {shown}, not a non-empty string")
    return value


def _renamed(error: AzidError, message: str) -> AzidError:
    """A copy of `error` with our message: it keeps the class and its fields (login_command,
    status, ...), so an unavailable source stays unavailable."""
    wrapped = copy.copy(error)
    wrapped.message = message
    wrapped.args = (message,)
    return wrapped


def assertion_form(assertion: str, client_id: str, scope: str, claims: str | None) -> EntraForm:
    """The §2 form "assertion, workload, Pipelines", in wire order; the assertion is its secret."""
    fields = [
        ("client_assertion", assertion),
        ("client_assertion_type", JWT_BEARER),
        ("client_id", client_id),
        ("grant_type", "client_credentials"),
        ("scope", scope),
    ]
    if claims:
        fields.append(("claims", claims))
    return EntraForm(fields, (assertion,))


class ClientAssertionCredential(EntraCredential):
    """An application authenticating with an assertion its own function supplies (§2.1).

    `func` is called on each cache miss: a plain function, or an `async def` with the async adapters.
    It may also be an `AssertionSource` such as `ManagedIdentityCredential(...).assertion(scope)`,
    whose flow runs inside this credential's (no callback; its token is cached where it came from).

    >>> core = ClientAssertionCredential(tenant_id, client_id, get_assertion)
    """

    _identity_prefix = "assert"  # §7.1

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        func: Callable[[], object] | AssertionSource,
        *,
        authority: str | None = None,
        additionally_allowed_tenants: Iterable[str] = (),
        request_timeout: float | None = None,
        disable_instance_discovery: bool = False,
        env: Mapping[str, str] | None = None,
        entropy: Callable[[int], bytes] | None = None,
    ) -> None:
        super().__init__(
            tenant_id,
            client_id,
            authority=authority,
            additionally_allowed_tenants=additionally_allowed_tenants,
            request_timeout=request_timeout,
            disable_instance_discovery=disable_instance_discovery,
            env=env,
            entropy=entropy,
        )
        if not callable(func) and not isinstance(func, AssertionSource):
            raise ConfigError(
                "ClientAssertionCredential: func is invalid: a callable or an assertion source is required"
            )
        self._func = func

    def _form(self, scope: str, claims: str | None, url: str, now: float) -> Flow[EntraForm]:
        assertion = yield from assertion_from(self._func, owner=type(self).__name__, now=now)
        return assertion_form(assertion, self._client_id, scope, claims)
