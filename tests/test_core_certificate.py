"""CertificateCredential as a core object: loading certificates, the assertion it signs, the ReadFile it
asks for, the form it posts, and the emulator's checks (PROTOCOL.md §2, §2.2, §7.4, §10 items 3, 20, 21)."""

from __future__ import annotations

import base64
import json
import logging
import pathlib
import pickle
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from azid_core.acquire import TokenCall
from azid_core.drive import run
from azid_core.effects import FileContent, HttpRequest, HttpResponse, ReadFile
from azid_core.entra.assertion import JWT_BEARER
from azid_core.entra.certificate import (
    CertificateCredential,
    ClientCertificate,
    ClientCertificateCredential,
    certificate_assertion,
    load_client_certificate,
)
from azid_core.errors import AuthError, AzidError, ConfigError, TransportError
from azid_core.testing import EntraEmulator, ScriptedIO
from azid_core.testing.certificates import certificate_der, check_certificate_assertion
from tests import certs

if TYPE_CHECKING:
    from collections.abc import Callable

    from azid_core.effects import Effect, Reply
    from azid_core.tokens import AccessTokenInfo

NOW = 1_700_000_000.0
TENANT, CLIENT = "tenant-c", "app-cert"
SCOPE = "https://vault.azure.net/.default"
PASSWORD = "Pfx-pässword~9"
TOKEN_URL = f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
ADFS = "https://adfs.contoso.local"
MIB = 1 << 20


def entropy(size: int) -> bytes:
    return bytes(range(size))


JTI = str(uuid.UUID(bytes=entropy(16), version=4))


def load(data: bytes, password: str | bytes | None = None) -> ClientCertificate:
    return load_client_certificate(data, password, owner="Owner", name="certificate_data")


def segment(part: str) -> bytes:
    assert "=" not in part  # base64url without padding (§2.2)
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def parts(assertion: str) -> tuple[bytes, bytes, bytes, bytes]:
    """Header JSON, payload JSON, signature, and the signed input of a compact JWT."""
    header, payload, signature = assertion.split(".")
    return segment(header), segment(payload), segment(signature), f"{header}.{payload}".encode()


def compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def credential(**kwargs: Any) -> CertificateCredential:
    kwargs.setdefault("env", {})
    kwargs.setdefault("entropy", entropy)
    if "certificate_path" not in kwargs:
        kwargs.setdefault("certificate_data", certs.leaf().pem())
    tenant = kwargs.pop("tenant_id", TENANT)
    return CertificateCredential(tenant, CLIENT, **kwargs)


def fetch(
    cred: CertificateCredential,
    handler: Callable[[Any], Reply],
    *,
    now: float = NOW,
    claims: str | None = None,
    enable_cae: bool = False,
) -> AccessTokenInfo:
    call = TokenCall((SCOPE,), claims, None, enable_cae)
    return run(cred.fetch_flow(call, cred.cache_key(call), now), handler)


@pytest.fixture
def emulator() -> EntraEmulator:
    emulator = EntraEmulator(clock=lambda: NOW)
    emulator.add_app(TENANT, CLIENT).add_certificate(certs.leaf().cert_pem)
    return emulator


def form(request: HttpRequest) -> list[tuple[str, str]]:
    return parse_qsl(request.body.decode(), keep_blank_values=True)


def assertion_of(request: HttpRequest) -> str:
    return dict(form(request))["client_assertion"]


# -- loading (§2.2) --


def test_pem_key_then_certificate() -> None:
    pair = certs.leaf()
    cert = load(pair.pem())
    assert cert.leaf_der == pair.der
    assert cert.chain_der == (pair.der,)
    # Thumbprints as cryptography computes them: base64url without padding of the DER's digests.
    assert cert.x5t == certs.b64url(pair.cert.fingerprint(hashes.SHA1()))
    assert cert.x5t_s256 == certs.b64url(pair.cert.fingerprint(hashes.SHA256()))
    assert cert.private_key.public_key().public_numbers() == pair.rsa_public.public_numbers()
    assert repr(cert) == f"ClientCertificate(x5t#S256={cert.x5t_s256!r}, 1 certificates)"
    with pytest.raises(AttributeError):
        cert.x5t = "changed"  # type: ignore[misc]


def test_pem_certificate_first_and_openssl_key_format() -> None:
    pair = certs.leaf()
    cert = load(pair.cert_pem + b"\n" + pair.key_pem(traditional=True))
    assert cert.leaf_der == pair.der


@pytest.mark.parametrize("password", [PASSWORD, PASSWORD.encode()])
@pytest.mark.parametrize("traditional", [False, True])
def test_encrypted_pem(password: str | bytes, traditional: bool) -> None:
    pair = certs.leaf()
    data = pair.key_pem(PASSWORD.encode(), traditional=traditional) + pair.cert_pem
    assert (b"ENCRYPTED" in data) is True
    assert load(data, password).leaf_der == pair.der


def test_pem_chain_is_leaf_first_then_file_order() -> None:
    issued, ca, other = certs.issued(), certs.ca(), certs.other()
    data = ca.cert_pem + other.cert_pem + issued.key_pem() + issued.cert_pem
    cert = load(data)
    assert cert.chain_der == (issued.der, ca.der, other.der)
    # Only the first key block counts: a second key later in the file is ignored.
    assert load(issued.pem() + ca.cert_pem + other.key_pem()).chain_der == (issued.der, ca.der)


@pytest.mark.parametrize("password", [None, PASSWORD, PASSWORD.encode()])
def test_pkcs12(password: str | bytes | None) -> None:
    issued, ca = certs.issued(), certs.ca()
    secret = password.encode() if isinstance(password, str) else password
    cert = load(issued.pfx(secret, extra=[ca.cert]), password)
    assert cert.chain_der == (issued.der, ca.der)
    assert cert.x5t_s256 == issued.x5t_s256


def _pkcs12_without_certificate() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    return pkcs12.serialize_key_and_certificates(
        b"azid",
        certs.leaf().key,
        None,
        None,
        serialization.NoEncryption(),
    )


def _pkcs12_without_key() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    return pkcs12.serialize_key_and_certificates(
        b"azid", None, certs.leaf().cert, None, serialization.NoEncryption()
    )


BROKEN_KEY = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
BROKEN_CERTIFICATE = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"

LOAD_ERRORS: list[tuple[str, Callable[[], bytes], str | None, str]] = [
    ("no key block", lambda: certs.leaf().cert_pem, None, "a PEM file needs a PRIVATE KEY"),
    ("no password", lambda: certs.leaf().pem(PASSWORD.encode()), None, "encrypted and no password was given"),
    (
        "wrong password",
        lambda: certs.leaf().pem(PASSWORD.encode()),
        "Wr0ng-pw~x",
        "the private key cannot be read",
    ),
    ("password, plain key", lambda: certs.leaf().pem(), PASSWORD, "a password was given but the private key"),
    ("broken key", lambda: BROKEN_KEY + certs.leaf().cert_pem, None, "the private key cannot be read"),
    ("no certificate", lambda: certs.leaf().key_pem(), None, "it holds no certificate"),
    ("broken certificate", lambda: certs.leaf().key_pem() + BROKEN_CERTIFICATE, None, "a CERTIFICATE block"),
    (
        "no match",
        lambda: certs.leaf().key_pem() + certs.other().cert_pem,
        None,
        "no certificate in it matches",
    ),
    ("EC PEM", lambda: certs.ec_leaf().pem(), None, "the private key is not an RSA key"),
    ("EC PKCS#12", lambda: certs.ec_leaf().pfx(), None, "the private key is not an RSA key"),
    ("PKCS#12, no password", lambda: certs.leaf().pfx(PASSWORD.encode()), None, "no password opens"),
    (
        "PKCS#12, wrong password",
        lambda: certs.leaf().pfx(PASSWORD.encode()),
        "Wr0ng-pw~x",
        "this password opens",
    ),
    ("not a certificate", lambda: b"\x00garbage", None, "not PEM, and not PKCS#12 data"),
    ("PKCS#12 without key", _pkcs12_without_key, None, "the PKCS#12 data holds no private key"),
    ("PKCS#12 without certificate", _pkcs12_without_certificate, None, "it holds no certificate"),
]


@pytest.mark.parametrize(
    ("data", "password", "problem"), [e[1:] for e in LOAD_ERRORS], ids=[e[0] for e in LOAD_ERRORS]
)
def test_load_errors(data: Callable[[], bytes], password: str | None, problem: str) -> None:
    content = data()
    with pytest.raises(ConfigError) as info:
        load(content, password)
    message = str(info.value)
    assert message.startswith("Owner: certificate_data is invalid: ")
    assert problem in message
    if password:
        assert password not in message
    assert "MII" not in message  # no base64 of key or certificate material
    assert info.value.__cause__ is None


def test_a_password_that_is_not_utf8_encodable() -> None:
    with pytest.raises(ConfigError) as info:
        load(certs.leaf().pem(), "\ud800")
    assert str(info.value) == "Owner: password is invalid: it cannot be encoded as UTF-8"


# -- the assertion (§2.2, §10 item 20) --


def test_default_assertion_is_ps256_with_x5t_s256() -> None:
    pair = certs.leaf()
    cert = load(pair.pem())
    assertion = certificate_assertion(
        cert, client_id=CLIENT, audience=TOKEN_URL, now=NOW + 0.9, entropy=entropy
    )
    header, payload, signature, signed = parts(assertion)
    assert header == compact({"alg": "PS256", "typ": "JWT", "x5t#S256": pair.x5t_s256})
    issued = int(NOW)
    assert payload == compact(
        {
            "aud": TOKEN_URL,
            "iss": CLIENT,
            "sub": CLIENT,
            "jti": JTI,
            "nbf": issued,
            "iat": issued,
            "exp": issued + 600,
        }
    )
    # RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32, checked with cryptography rather than pyjwt.
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    pair.rsa_public.verify(signature, signed, pss, hashes.SHA256())


def test_rs256_assertion_with_x5t() -> None:
    pair = certs.leaf()
    assertion = certificate_assertion(
        load(pair.pem()), client_id=CLIENT, audience=TOKEN_URL, now=NOW, entropy=entropy, algorithm="RS256"
    )
    header, _, signature, signed = parts(assertion)
    assert header == compact({"alg": "RS256", "typ": "JWT", "x5t": pair.x5t})
    pair.rsa_public.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("algorithm", ["PS256", "RS256"])
def test_x5c_is_padded_standard_base64_of_each_der_leaf_first(algorithm: str) -> None:
    issued, ca = certs.issued(), certs.ca()
    cert = load(ca.cert_pem + issued.pem())
    assertion = certificate_assertion(
        cert,
        client_id=CLIENT,
        audience=TOKEN_URL,
        now=NOW,
        entropy=entropy,
        algorithm=algorithm,
        send_chain=True,
    )
    header = json.loads(parts(assertion)[0])
    assert list(header) == ["alg", "typ", "x5c", "x5t" if algorithm == "RS256" else "x5t#S256"]
    assert header["x5c"] == [base64.b64encode(issued.der).decode(), base64.b64encode(ca.der).decode()]
    assert [base64.b64decode(value, validate=True) for value in header["x5c"]] == [issued.der, ca.der]


def test_each_token_request_signs_a_new_assertion(emulator: EntraEmulator) -> None:
    counter = iter(range(1, 100))
    cred = credential(entropy=lambda size: bytes([next(counter)]) * size)
    fetch(cred, emulator)
    fetch(cred, emulator, now=NOW - 5, claims='{"access_token":{}}')
    first, second = (
        jwt.decode(assertion_of(r), options={"verify_signature": False}) for r in emulator.requests
    )
    assert first["jti"] != second["jti"]
    assert (first["iat"], second["iat"]) == (int(NOW), int(NOW) - 5)


# -- the credential: construction --


def test_construction_imports_neither_cryptography_nor_jwt() -> None:
    script = """
import sys
from azid_core import ClientSecretCredential
import azid_core.entra.certificate as module
module.CertificateCredential("t", "c", "/no/such/file.pem", env={})
module.CertificateCredential("t", "c", certificate_data=b"not parsed yet", password="p", env={})
print(sorted(name for name in sys.modules if name.split(".")[0] in ("cryptography", "jwt")))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


CONSTRUCTION_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    ({}, "certificate_path", "exactly one of certificate_path and certificate_data is required"),
    (
        {"certificate_path": "/c.pem", "certificate_data": b"x"},
        "certificate_path",
        "exactly one of certificate_path and certificate_data is required",
    ),
    ({"certificate_path": ""}, "certificate_path", "a non-empty path string is required"),
    ({"certificate_path": 7}, "certificate_path", "a non-empty path string is required"),
    ({"certificate_data": ""}, "certificate_data", "non-empty bytes are required"),
    ({"certificate_data": b""}, "certificate_data", "non-empty bytes are required"),
    ({"certificate_data": "-----BEGIN"}, "certificate_data", "non-empty bytes are required"),
    ({"certificate_data": b"x", "password": 1234}, "password", "a str or bytes is required"),
    ({"certificate_data": b"x", "assertion_algorithm": "ES256"}, "assertion_algorithm", "PS256 or RS256"),
    ({"certificate_data": b"x", "assertion_algorithm": "ps256"}, "assertion_algorithm", "PS256 or RS256"),
    ({"certificate_data": b"x", "request_timeout": 0}, "request_timeout", "a number of seconds"),
]


@pytest.mark.parametrize(("kwargs", "option", "rule"), CONSTRUCTION_ERRORS)
def test_construction_errors(kwargs: dict[str, Any], option: str, rule: str) -> None:
    with pytest.raises(ConfigError) as info:
        CertificateCredential(TENANT, CLIENT, env={}, **kwargs)
    assert str(info.value).startswith(f"CertificateCredential: {option} is invalid: ")
    assert rule in str(info.value)


def test_the_rust_name_is_the_same_class() -> None:
    assert ClientCertificateCredential is CertificateCredential


def test_identity_and_repr_hold_no_secret() -> None:
    cred = credential(password=PASSWORD, certificate_data=certs.leaf().pem(PASSWORD.encode()))
    key = cred.cache_key(TokenCall((SCOPE,), None, None, False))
    assert key == ((SCOPE,), TENANT, False, f"cert:https://login.microsoftonline.com:{CLIENT}")
    assert repr(cred) == (
        f"CertificateCredential(tenant_id={TENANT!r}, client_id={CLIENT!r}, "
        "authority='https://login.microsoftonline.com')"
    )
    assert PASSWORD not in repr(cred)
    assert PASSWORD not in str(cred)


# -- the credential: reading the file (§2.2) --


def token_reply() -> HttpResponse:
    body = {"access_token": "at-1", "expires_in": 3600, "token_type": "Bearer"}
    return HttpResponse(200, (("Content-Type", "application/json"),), json.dumps(body).encode())


def file(data: bytes) -> FileContent:
    return FileContent(data, len(data), 1)


def test_the_file_is_read_at_the_first_request_and_parsed_once() -> None:
    cred = credential(certificate_path="/etc/app/cert.pem")
    io = ScriptedIO(file(certs.leaf().pem()), token_reply(), token_reply())
    assert fetch(cred, io).token == "at-1"
    assert io.seen[0] == ReadFile("/etc/app/cert.pem", max_bytes=MIB)
    fetch(cred, io)
    assert [type(e) for e in io.seen] == [ReadFile, HttpRequest, HttpRequest]
    header = json.loads(parts(assertion_of(io.seen[2]))[0])  # type: ignore[arg-type]
    assert header["x5t#S256"] == certs.leaf().x5t_s256


def test_a_path_like_path(tmp_path: pathlib.Path) -> None:
    cred = credential(certificate_path=tmp_path / "cert.pem")
    io = ScriptedIO(file(certs.leaf().pem()), token_reply())
    fetch(cred, io)
    assert io.seen[0] == ReadFile(str(tmp_path / "cert.pem"), max_bytes=MIB)


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (
            TransportError("file_not_found", "/etc/app/cert.pem does not exist"),
            "/etc/app/cert.pem does not exist",
        ),
        (
            TransportError("file_error", "/etc/app/cert.pem cannot be opened: Permission denied"),
            "/etc/app/cert.pem cannot be opened: Permission denied",
        ),
    ],
)
def test_an_unreadable_file_is_a_config_error_before_any_request(
    failure: TransportError, message: str
) -> None:
    cred = credential(certificate_path="/etc/app/cert.pem")
    io = ScriptedIO(failure)
    with pytest.raises(ConfigError) as info:
        fetch(cred, io)
    assert str(info.value) == f"CertificateCredential: certificate_path is invalid: {message}"
    assert info.value.__cause__ is failure
    assert [type(e) for e in io.seen] == [ReadFile]


def test_an_oversize_file_is_a_config_error() -> None:
    cred = credential(certificate_path="/big.pem")
    io = ScriptedIO(FileContent(b"-" * (MIB + 1), 5 * MIB, 1))
    with pytest.raises(ConfigError) as info:
        fetch(cred, io)
    assert (
        str(info.value) == "CertificateCredential: certificate_path is invalid: /big.pem is larger than 1 MiB"
    )
    assert [type(e) for e in io.seen] == [ReadFile]


def test_a_bad_file_names_the_path_and_is_read_again_next_time() -> None:
    cred = credential(certificate_path="/c.pem", password=PASSWORD)
    io = ScriptedIO(
        file(certs.leaf().pem(b"another password")), file(certs.leaf().pem(PASSWORD.encode())), token_reply()
    )
    with pytest.raises(ConfigError) as info:
        fetch(cred, io)
    assert str(info.value) == (
        "CertificateCredential: certificate_path is invalid: "
        "the private key cannot be read (wrong password, or not a valid key)"
    )
    assert PASSWORD not in str(info.value)
    # A failed parse is not remembered: the (fixed) file is read again.
    assert fetch(cred, io).token == "at-1"
    assert [type(e) for e in io.seen] == [ReadFile, ReadFile, HttpRequest]


def test_a_wrong_reply_to_read_file_is_an_adapter_bug() -> None:
    cred = credential(certificate_path="/c.pem")
    with pytest.raises(AzidError) as info:
        fetch(cred, ScriptedIO(None))
    assert type(info.value) is AzidError
    assert str(info.value) == "the adapter answered ReadFile with NoneType, not a file's content"
    with pytest.raises(AzidError):
        fetch(cred, ScriptedIO(FileContent(None, 10, 1)))


def test_certificate_data_is_parsed_at_the_first_request_once() -> None:
    cred = credential(certificate_data=bytearray(certs.leaf().pfx(PASSWORD.encode())), password=PASSWORD)
    assert cred._signer.certificate is None
    io = ScriptedIO(token_reply(), token_reply())
    fetch(cred, io)
    parsed = cred._signer.certificate
    assert parsed is not None
    assert parsed.leaf_der == certs.leaf().der
    fetch(cred, io)
    assert cred._signer.certificate is parsed
    assert [type(e) for e in io.seen] == [HttpRequest, HttpRequest]
    with pytest.raises(
        ConfigError, match=r"^CertificateCredential: certificate_data is invalid: .*no password"
    ):
        fetch(credential(certificate_data=certs.leaf().pfx(PASSWORD.encode())), ScriptedIO())


def test_pickling_keeps_configuration_and_drops_the_parsed_certificate() -> None:
    cred = credential(certificate_path="/c.pem", password=PASSWORD, send_certificate_chain=True)
    io = ScriptedIO(file(certs.leaf().pem(PASSWORD.encode())), token_reply())
    fetch(cred, io)
    assert cred._signer.certificate is not None
    back = pickle.loads(pickle.dumps(cred))
    assert type(back) is CertificateCredential
    assert back._signer.certificate is None
    assert len(back.token_cache) == 0
    state = {k: v for k, v in vars(cred).items() if k not in ("_cache", "_signer")}
    assert {k: v for k, v in vars(back).items() if k not in ("_cache", "_signer")} == state
    assert {**vars(back._signer), "certificate": None} == {**vars(cred._signer), "certificate": None}
    # The copy reads the file again at its first request.
    io = ScriptedIO(file(certs.leaf().pem(PASSWORD.encode())), token_reply())
    fetch(back, io)
    assert [type(e) for e in io.seen] == [ReadFile, HttpRequest]
    assert "x5c" in json.loads(parts(assertion_of(io.seen[1]))[0])  # type: ignore[arg-type]


# -- the credential: the POST (§2 table "certificate") --


def test_form_fields_and_headers(emulator: EntraEmulator) -> None:
    cred = credential()
    info = fetch(cred, emulator, claims='{"access_token":{}}', enable_cae=True)
    assert emulator.decode(info.token)["appid"] == CLIENT
    (request,) = emulator.requests
    assert (request.method, request.url) == ("POST", TOKEN_URL)
    assertion = assertion_of(request)
    assert form(request) == [
        ("client_id", CLIENT),
        ("grant_type", "client_credentials"),
        ("client_info", "1"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
        ("scope", SCOPE),
        ("claims", '{"access_token": {"xms_cc": {"values": ["CP1"]}}}'),
    ]
    assert [name for name, _ in request.headers] == [
        "User-Agent",
        "x-ms-client-request-id",
        "client-request-id",
        "Accept",
        "Content-Type",
    ]
    claims = jwt.decode(assertion, options={"verify_signature": False})
    assert claims["aud"] == request.url  # the URL actually posted to
    assert jwt.get_unverified_header(assertion)["alg"] == "PS256"


def test_without_claims_the_form_ends_with_scope(emulator: EntraEmulator) -> None:
    fetch(credential(), emulator)
    assert [name for name, _ in form(emulator.requests[0])][-1] == "scope"


def test_rs256_when_asked(emulator: EntraEmulator) -> None:
    fetch(credential(assertion_algorithm="RS256"), emulator)
    header = jwt.get_unverified_header(assertion_of(emulator.requests[0]))
    assert header == {"alg": "RS256", "typ": "JWT", "x5t": certs.leaf().x5t}


def test_adfs_forces_rs256_and_the_discovered_audience() -> None:
    emulator = EntraEmulator(clock=lambda: NOW)
    emulator.add_app("adfs", CLIENT).add_certificate(certs.leaf().der)
    cred = credential(tenant_id="adfs", authority=ADFS, assertion_algorithm="PS256")
    info = fetch(cred, emulator)
    assert emulator.decode(info.token)["tid"] == "adfs"
    post = emulator.requests[1]
    assert post.url == f"{ADFS}/adfs/oauth2/token"
    assertion = assertion_of(post)
    assert jwt.get_unverified_header(assertion) == {"alg": "RS256", "typ": "JWT", "x5t": certs.leaf().x5t}
    assert jwt.decode(assertion, options={"verify_signature": False})["aud"] == f"{ADFS}/adfs/oauth2/token"


def test_a_tenant_named_adfs_by_the_caller_is_adfs_too() -> None:
    emulator = EntraEmulator(clock=lambda: NOW)
    emulator.add_app("adfs", CLIENT).add_certificate(certs.leaf().der)
    emulator.add_app(TENANT, CLIENT).add_certificate(certs.leaf().der)
    cred = credential(authority=ADFS, additionally_allowed_tenants=["adfs"])
    call = TokenCall((SCOPE,), None, "adfs", False)
    run(cred.fetch_flow(call, cred.cache_key(call), NOW), emulator)  # type: ignore[arg-type]
    fetch(cred, emulator)  # then the configured tenant: PS256 again
    headers = [
        jwt.get_unverified_header(assertion_of(r))["alg"] for r in emulator.requests if r.method == "POST"
    ]
    assert headers == ["RS256", "PS256"]


# -- secrets (§0.7) --


def echoing(seen: list[str]) -> Callable[[Effect], Reply]:
    """Entra refusing the request with a description that quotes the assertion and the password."""

    def handler(request: Any) -> Reply:
        assertion = assertion_of(request)
        seen.append(assertion)
        body = {
            "error": "invalid_client",
            "error_description": f"AADSTS700027: bad assertion {assertion} for password {PASSWORD}",
            "error_codes": [700027],
        }
        return HttpResponse(401, (("Content-Type", "application/json"),), json.dumps(body).encode())

    return handler


def test_no_password_or_assertion_in_errors_or_logs(
    emulator: EntraEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="azid")
    cred = credential(certificate_data=certs.leaf().pem(PASSWORD.encode()), password=PASSWORD)
    fetch(cred, emulator)
    seen: list[str] = []
    with pytest.raises(AuthError) as info:
        fetch(cred, echoing(seen), claims="{}")
    assertions = [assertion_of(emulator.requests[0]), *seen]
    assert info.value.error_codes == (700027,)
    texts = [str(info.value), repr(info.value), info.value.description or ""]
    texts += [record.getMessage() for record in caplog.records]
    assert caplog.records  # DEBUG records were written
    assert all(PASSWORD not in text for text in texts)
    assert all(a.split(".")[2] not in text for a in assertions for text in texts)
    assert "bad assertion **** for password ****" in str(info.value)


def test_a_bytes_password_is_masked_too() -> None:
    cred = credential(certificate_data=certs.leaf().pem(PASSWORD.encode()), password=PASSWORD.encode())
    with pytest.raises(AuthError) as info:
        fetch(cred, echoing([]))
    assert PASSWORD not in str(info.value)


# -- the emulator's checks (testing.certificates) --


def tampering(emulator: EntraEmulator) -> Callable[[Any], Reply]:
    """A network that flips one bit of the assertion's signature on the way to Entra."""

    def handler(request: HttpRequest) -> Reply:
        fields = form(request)
        for index, (name, value) in enumerate(fields):
            if name == "client_assertion":
                head, body, signature = value.split(".")
                flipped = bytearray(segment(signature))
                flipped[0] ^= 1
                fields[index] = (name, f"{head}.{body}.{certs.b64url(bytes(flipped))}")
        from urllib.parse import urlencode

        return emulator(request._replace(body=urlencode(fields).encode()))

    return handler


def refused(cred: CertificateCredential, handler: Callable[[Any], Reply], code: int) -> AuthError:
    with pytest.raises(AuthError) as info:
        fetch(cred, handler)
    assert info.value.error_codes == (code,)
    assert info.value.error == "invalid_client"
    return info.value


def test_the_emulator_accepts_a_registered_certificate_in_both_modes(emulator: EntraEmulator) -> None:
    for algorithm in ("PS256", "RS256"):
        assert fetch(credential(assertion_algorithm=algorithm), emulator).token


def test_the_emulator_refuses_a_tampered_signature(emulator: EntraEmulator) -> None:
    error = refused(credential(), tampering(emulator), 700027)
    assert "invalid signature" in str(error)


def test_the_emulator_refuses_an_unregistered_certificate(emulator: EntraEmulator) -> None:
    error = refused(credential(certificate_data=certs.other().pem()), emulator, 700027)
    assert "not registered on application" in str(error)
    assert certs.other().x5t_s256 in str(error)


@pytest.mark.parametrize("skew", [600, 3600, -1])
def test_the_emulator_refuses_an_assertion_outside_its_time_range(emulator: EntraEmulator, skew: int) -> None:
    emulator.clock = lambda: NOW + skew
    error = refused(credential(), emulator, 700024)
    assert "not within its valid time range" in str(error)


def test_the_emulator_checks_audience_and_issuer() -> None:
    app = EntraEmulator(clock=lambda: NOW).add_app(TENANT, CLIENT)
    app.add_certificate(certs.leaf().pem())  # PEM with a key block first: the certificate is found
    cert = load(certs.leaf().pem())

    def check(assertion: str, audience: str = TOKEN_URL) -> Any:
        header = jwt.get_unverified_header(assertion)
        return check_certificate_assertion(app, assertion, header, audience=audience, now=NOW)

    good = certificate_assertion(cert, client_id=CLIENT, audience=TOKEN_URL, now=NOW, entropy=entropy)
    assert check(good) is None
    assert check(good, audience=TOKEN_URL + "x").code == 700023
    wrong_client = certificate_assertion(
        cert, client_id="app-other", audience=TOKEN_URL, now=NOW, entropy=entropy
    )
    assert check(wrong_client).code == 700021


def signed(claims: dict[str, Any], headers: dict[str, Any], algorithm: str = "PS256") -> str:
    return jwt.encode(claims, certs.leaf().key, algorithm=algorithm, headers=headers)


def test_the_emulator_refuses_malformed_assertions() -> None:
    app = EntraEmulator(clock=lambda: NOW).add_app(TENANT, CLIENT)
    app.add_certificate(certs.leaf().der)
    thumb = {"x5t#S256": certs.leaf().x5t_s256}
    base = {
        "aud": TOKEN_URL,
        "iss": CLIENT,
        "sub": CLIENT,
        "jti": JTI,
        "nbf": int(NOW),
        "exp": int(NOW) + 600,
    }

    def code(assertion: str, header: dict[str, Any] | None = None) -> int | None:
        fault = check_certificate_assertion(
            app, assertion, header or jwt.get_unverified_header(assertion), audience=TOKEN_URL, now=NOW
        )
        return None if fault is None else fault.code

    assert code(signed(base, thumb)) is None
    assert code(signed(base, thumb, "RS256")) is None
    assert code(signed(base, thumb), {"alg": "HS256", **thumb}) == 50027
    assert code(signed({k: v for k, v in base.items() if k != "jti"}, thumb)) == 50027
    assert code(signed({**base, "nbf": "soon"}, thumb)) == 50027
    assert code(signed({**base, "exp": True}, thumb)) == 50027


def test_the_emulator_takes_assertions_shaped_as_msal_makes_them() -> None:
    # azure-identity's sync path (msal): RS256, a padded `x5t`, no `nbf`, fractional times.
    app = EntraEmulator(clock=lambda: NOW).add_app(TENANT, CLIENT)
    app.add_certificate(certs.leaf().der)
    padded = {"x5t": base64.urlsafe_b64encode(base64.urlsafe_b64decode(certs.leaf().x5t + "=")).decode()}
    assert padded["x5t"].endswith("=")
    claims: dict[str, Any] = {"aud": TOKEN_URL, "iss": CLIENT, "sub": CLIENT, "jti": JTI}

    def code(**times: float) -> int | None:
        assertion = signed({**claims, **times}, padded, "RS256")
        header = jwt.get_unverified_header(assertion)
        fault = check_certificate_assertion(app, assertion, header, audience=TOKEN_URL, now=NOW)
        return None if fault is None else fault.code

    assert code(iat=NOW - 0.5, exp=NOW + 599.5) is None
    assert code(iat=NOW + 10.5, exp=NOW + 599.5) == 700024  # `iat` bounds it when `nbf` is absent
    assert code(exp=NOW - 0.5) == 700024


def test_certificate_der_accepts_pem_and_der() -> None:
    pair = certs.issued()
    assert certificate_der(pair.cert_pem) == pair.der
    assert certificate_der(pair.der) == pair.der
    assert certificate_der(pair.key_pem() + pair.cert_pem + certs.ca().cert_pem) == pair.der
    with pytest.raises(ValueError, match="asn1"):
        certificate_der(b"not a certificate")
