"""CertificateCredential through every adapter path, against the Entra emulator on loopback HTTPS
(PROTOCOL.md §2.2): from a file and from data, PS256 and RS256, the chain, and Entra's refusals."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import jwt
import pytest

from azid_core.entra.assertion import JWT_BEARER
from azid_core.entra.certificate import CertificateCredential
from azid_core.errors import AuthError, ConfigError
from azid_core.testing import EntraEmulator
from tests import certs
from tests.conftest import CLIENT, TENANT, FakeClock
from tests.loopback import LoopbackServer

if TYPE_CHECKING:
    import pathlib
    from collections.abc import Callable

    from azid_core.effects import HttpRequest, HttpResponse
    from tests.paths import Path

VAULT = "https://vault.azure.net/.default"
PASSWORD = "pfx-Pass~word.7"


def core(url: str, **options: Any) -> CertificateCredential:
    return CertificateCredential(TENANT, CLIENT, authority=url, env={}, **options)


def sent_assertion(request: HttpRequest) -> str:
    return dict(parse_qsl(request.body.decode()))["client_assertion"]


@pytest.fixture
def registered(emulator: EntraEmulator) -> EntraEmulator:
    app = emulator.apps[(TENANT, CLIENT)]
    app.add_certificate(certs.leaf().cert_pem)
    app.add_certificate(certs.issued().der)
    return emulator


def test_a_token_from_a_certificate_file(
    path: Path,
    server: LoopbackServer,
    registered: EntraEmulator,
    clock: FakeClock,
    tmp_path: pathlib.Path,
) -> None:
    pem = tmp_path / "cert.pem"
    pem.write_bytes(certs.leaf().pem())
    cred = path.credential(core(server.url, certificate_path=str(pem)), clock)
    token = path.get_token(cred, VAULT)
    claims = registered.decode(token.token)
    assert (claims["aud"], claims["appid"]) == ("https://vault.azure.net", CLIENT)
    pem.unlink()  # parsed once: the file is not needed again
    assert path.get_token(cred, VAULT) == token
    assert path.get_token(cred, VAULT, claims='{"access_token":{}}') != token
    (first, second) = registered.requests
    fields = [name for name, _ in parse_qsl(first.body.decode())]
    assert fields == [
        "client_id",
        "grant_type",
        "client_info",
        "client_assertion_type",
        "client_assertion",
        "scope",
    ]
    assert dict(parse_qsl(first.body.decode()))["client_assertion_type"] == JWT_BEARER
    assertion = sent_assertion(first)
    assert jwt.get_unverified_header(assertion) == {
        "alg": "PS256",
        "typ": "JWT",
        "x5t#S256": certs.leaf().x5t_s256,
    }
    payload = jwt.decode(assertion, options={"verify_signature": False})
    assert payload["aud"] == f"{server.url}/{TENANT}/oauth2/v2.0/token"
    assert payload["nbf"] == int(clock.now)
    assert sent_assertion(second) != assertion
    path.close(cred)


@pytest.mark.parametrize("algorithm", ["PS256", "RS256"])
def test_a_token_from_pkcs12_data_with_the_chain(
    path: Path, server: LoopbackServer, registered: EntraEmulator, clock: FakeClock, algorithm: str
) -> None:
    issued, ca = certs.issued(), certs.ca()
    data = issued.pfx(PASSWORD.encode(), extra=[ca.cert])
    options = {"password": PASSWORD, "send_certificate_chain": True, "assertion_algorithm": algorithm}
    cred = path.credential(core(server.url, certificate_data=data, **options), clock)
    assert registered.decode(path.get_token(cred, VAULT).token)["appid"] == CLIENT
    header = jwt.get_unverified_header(sent_assertion(registered.requests[0]))
    thumbprint = {"x5t": issued.x5t} if algorithm == "RS256" else {"x5t#S256": issued.x5t_s256}
    assert header == {
        "alg": algorithm,
        "typ": "JWT",
        "x5c": [base64.b64encode(issued.der).decode(), base64.b64encode(ca.der).decode()],
        **thumbprint,
    }
    path.close(cred)


def test_a_missing_file_is_a_config_error_before_any_request(
    path: Path, server: LoopbackServer, registered: EntraEmulator, clock: FakeClock, tmp_path: pathlib.Path
) -> None:
    missing = tmp_path / "absent.pem"
    cred = path.credential(core(server.url, certificate_path=str(missing)), clock)
    with pytest.raises(ConfigError) as info:
        path.get_token(cred, VAULT)
    assert str(info.value).startswith(f"CertificateCredential: certificate_path is invalid: {missing}")
    assert registered.requests == []
    path.close(cred)


def refused(path: Path, cred: Any) -> AuthError:
    with pytest.raises(AuthError) as info:
        path.get_token(cred, VAULT)
    assert info.value.status == 401
    assert info.value.error == "invalid_client"
    path.close(cred)
    return info.value


def test_an_unregistered_certificate_is_refused(
    path: Path, server: LoopbackServer, registered: EntraEmulator, clock: FakeClock
) -> None:
    cred = path.credential(core(server.url, certificate_data=certs.other().pem()), clock)
    error = refused(path, cred)
    assert error.error_codes == (700027,)
    assert "not registered on application" in str(error)


def tampering(emulator: EntraEmulator) -> Callable[[HttpRequest], HttpResponse]:
    """The network between client and Entra flips one bit of the assertion's signature."""

    def handler(request: HttpRequest) -> HttpResponse:
        fields = parse_qsl(request.body.decode())
        for index, (name, value) in enumerate(fields):
            if name == "client_assertion":
                head, body, signature = value.split(".")
                raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
                raw[-1] ^= 1
                fields[index] = (name, f"{head}.{body}.{certs.b64url(bytes(raw))}")
        return emulator(request._replace(body=urlencode(fields).encode()))

    return handler


def test_a_tampered_signature_is_refused(
    path: Path, server: LoopbackServer, registered: EntraEmulator, clock: FakeClock
) -> None:
    # `server` puts the shared loopback CA in the environment; this second server uses it too.
    with LoopbackServer(tampering(registered)) as tampered:
        cred = path.credential(core(tampered.url, certificate_data=certs.leaf().pem()), clock)
        error = refused(path, cred)
    assert error.error_codes == (700027,)
    assert "invalid signature" in str(error)


def test_an_expired_assertion_is_refused(
    path: Path, server: LoopbackServer, registered: EntraEmulator, clock: FakeClock
) -> None:
    # An Entra whose clock runs 601 s ahead of the client's: the 600 s assertion has expired.
    ahead = EntraEmulator(clock=lambda: clock.now + 601)
    ahead.apps = registered.apps
    with LoopbackServer(ahead) as late:
        cred = path.credential(core(late.url, certificate_data=certs.leaf().pem()), clock)
        error = refused(path, cred)
    assert error.error_codes == (700024,)
    assert "not within its valid time range" in str(error)
