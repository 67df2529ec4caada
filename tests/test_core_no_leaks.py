"""No secret, password, assertion or token leaks from any service-principal credential (PROTOCOL.md
§0.7, §8): not in its repr, not in a token's repr, not in DEBUG records, and not in the errors it
raises when a hostile service echoes the whole request back, or an adapter's failure text does."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import pytest

from azid_core import (
    AzidError,
    AzurePipelinesCredential,
    CertificateCredential,
    ClientAssertionCredential,
    ClientSecretCredential,
    EnvironmentCredential,
    OnBehalfOfCredential,
    TransportError,
    WorkloadIdentityCredential,
)
from azid_core.acquire import TokenCall
from azid_core.drive import run
from azid_core.effects import (
    FileContent,
    FunctionCall,
    FunctionResult,
    HttpRequest,
    HttpResponse,
    ReadFile,
    Sleep,
)
from tests import certs

if TYPE_CHECKING:
    from collections.abc import Callable

    from azid_core.acquire import TokenSource
    from azid_core.effects import Effect, Reply

NOW = 1_700_000_000.0
SCOPE = "https://vault.azure.net/.default"
AUTHORITY = "https://login.contoso.local"
OIDC = "https://pipelines.contoso.local/org/_apis/distributedtask/hubs/build/plans/p/jobs/j/oidctoken"
TOKEN = "access-token-value-0123456789"
REFRESH = "refresh-token-value-0123456789"
OIDC_TOKEN = "oidc-token-value-0123456789"
ASSERTION = "client-assertion-value-0123456789"
FEDERATED = "federated-file-token-0123456789"
PASSWORD = "certificate-Password~0123"
SECRET = "client-Secret~value.0123456789"
USER = "user-assertion-value-0123456789"
SYSTEM = "system-access-token-0123456789"


def build(name: str) -> tuple[TokenSource, tuple[str, ...]]:
    """A credential of each kind, and the secrets it holds or will be handed."""
    options: dict[str, Any] = {"authority": AUTHORITY, "env": {}}
    if name == "secret":
        return ClientSecretCredential("t", "app", SECRET, **options), (SECRET,)
    if name == "certificate":
        pfx = certs.leaf().pfx(PASSWORD.encode())
        return CertificateCredential("t", "app", certificate_data=pfx, password=PASSWORD, **options), (
            PASSWORD,
        )
    if name == "assertion":
        return ClientAssertionCredential("t", "app", lambda: ASSERTION, **options), (ASSERTION,)
    if name == "workload":
        workload = WorkloadIdentityCredential(
            tenant_id="t", client_id="app", token_file_path="/token", **options
        )
        return workload, (FEDERATED,)
    if name == "pipelines":
        options["env"] = {"SYSTEM_OIDCREQUESTURI": OIDC}
        pipelines = AzurePipelinesCredential(
            tenant_id="t", client_id="app", service_connection_id="c", system_access_token=SYSTEM, **options
        )
        return pipelines, (SYSTEM, OIDC_TOKEN)
    if name == "obo":
        obo = OnBehalfOfCredential("t", "app", user_assertion=USER, client_secret=SECRET, **options)
        return obo, (USER, SECRET, REFRESH)
    assert name == "environment"
    env = {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "app", "AZURE_CLIENT_SECRET": SECRET}
    return EnvironmentCredential(env=env, authority=AUTHORITY), (SECRET,)


NAMES = ["secret", "certificate", "assertion", "workload", "pipelines", "obo", "environment"]


class Service:
    """Answers every effect; `echo` makes the token endpoint refuse with the whole request in its
    error description, and `transport` fails the token POST with the body in the failure text."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.sent: list[str] = []  # every form value sent, assertions included

    def __call__(self, effect: Effect) -> Reply:
        if isinstance(effect, ReadFile):
            return FileContent(FEDERATED.encode(), len(FEDERATED), 1)
        if isinstance(effect, FunctionCall):
            return FunctionResult(effect.function())
        if isinstance(effect, Sleep):  # between retries of a refused connection
            return None
        assert isinstance(effect, HttpRequest)
        if effect.url.startswith(OIDC):
            return HttpResponse(200, (), json.dumps({"oidcToken": OIDC_TOKEN}).encode())
        body = effect.body.decode()
        self.sent += [unquote_plus(part.partition("=")[2]) for part in body.split("&")]
        if self.mode == "transport":
            raise TransportError("connect", f"refused while sending {body} with {effect.headers}")
        if self.mode == "echo":
            # The form, each value alone (as a service quoting a field would), and the headers.
            echo = f"{body} {' '.join(self.sent)} {effect.headers}"
            reply = {"error": "invalid_client", "error_description": f"AADSTS7000215: you sent {echo}"}
            return HttpResponse(401, (), json.dumps(reply).encode())
        token = {"access_token": TOKEN, "expires_in": 3600, "refresh_token": REFRESH}
        return HttpResponse(200, (), json.dumps(token).encode())


def fetch(cred: TokenSource, service: Callable[[Effect], Reply]) -> Any:
    call = TokenCall((SCOPE,), None, None, False)
    return run(cred.fetch_flow(call, cred.cache_key(call), NOW), service)


def texts_of(error: BaseException) -> list[str]:
    """Everything an error shows: str, repr, every field, and the same for its azid causes. (The
    adapter's own TransportError at the end of the chain carries the adapter's text as it wrote it.)"""
    found: list[str] = []
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, TransportError):
        found += [str(seen), repr(seen)]
        found += [repr(value) for value in vars(seen).values()]
        seen = seen.__cause__
    return found


@pytest.mark.parametrize("name", NAMES)
def test_a_working_credential_shows_no_secret(name: str, caplog: pytest.LogCaptureFixture) -> None:
    cred, secrets = build(name)
    service = Service()
    with caplog.at_level(logging.DEBUG, logger="azid"):
        info = fetch(cred, service)
        if name == "obo":
            fetch(cred, service)  # the second miss sends the refresh token
    assert info.token == TOKEN
    shown = [repr(cred), repr(info), *(record.getMessage() for record in caplog.records)]
    sent = set(service.sent)
    for secret in {*secrets, TOKEN, *(value for value in sent if len(value) > 100)}:
        assert not any(secret in text for text in shown), (name, secret)


@pytest.mark.parametrize("mode", ["echo", "transport"])
@pytest.mark.parametrize("name", NAMES)
def test_errors_mask_what_the_service_or_adapter_echoes(
    name: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    cred, secrets = build(name)
    service = Service(mode)
    with caplog.at_level(logging.DEBUG, logger="azid"), pytest.raises(AzidError) as info:
        fetch(cred, service)
    # The certificate grant's assertion is made per request: it is among the form values sent.
    assertions = {value for value in service.sent if value.count(".") == 2 and len(value) > 100}
    shown = [*texts_of(info.value), *(record.getMessage() for record in caplog.records)]
    for secret in {*secrets, *assertions}:
        assert not any(secret in text for text in shown), (name, mode, secret)
    assert str(info.value).startswith(f"{type(cred).__name__}: ") or name == "environment"
