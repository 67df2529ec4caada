"""Certificates for the tests, made with cryptography in the test run (each key once per session).

A self-signed RSA leaf, a leaf issued by a generated CA, an EC leaf for the non-RSA case, and the
file formats a user hands to CertificateCredential: PEM (key and certificates in one file, plain or
encrypted) and PKCS#12 (with or without a password).
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
from typing import TYPE_CHECKING, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import TypeAlias

    Key: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
NOT_AFTER = datetime.datetime(2040, 1, 1, tzinfo=datetime.timezone.utc)


class Pair(NamedTuple):
    """A private key and its certificate."""

    key: Key
    cert: x509.Certificate

    @property
    def rsa_public(self) -> rsa.RSAPublicKey:
        public = self.key.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        return public

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def x5t(self) -> str:
        return b64url(hashlib.sha1(self.der, usedforsecurity=False).digest())

    @property
    def x5t_s256(self) -> str:
        return b64url(hashlib.sha256(self.der).digest())

    def key_pem(self, password: bytes | None = None, *, traditional: bool = False) -> bytes:
        """The key as PKCS#8 (`PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`) or OpenSSL's `RSA PRIVATE KEY`."""
        encryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        form = (
            serialization.PrivateFormat.TraditionalOpenSSL
            if traditional
            else serialization.PrivateFormat.PKCS8
        )
        return self.key.private_bytes(serialization.Encoding.PEM, form, encryption)

    def pem(self, password: bytes | None = None) -> bytes:
        """Key and certificate in one PEM file."""
        return self.key_pem(password) + self.cert_pem

    def pfx(self, password: bytes | None = None, extra: Sequence[x509.Certificate] = ()) -> bytes:
        """A PKCS#12 file holding the key, the certificate and `extra` certificates."""
        encryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return pkcs12.serialize_key_and_certificates(
            b"azid", self.key, self.cert, list(extra) or None, encryption
        )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@functools.cache
def rsa_key(label: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def issue(subject: str, key: Key, issuer: Pair | None = None, *, ca: bool = False) -> x509.Certificate:
    """A certificate for `key`, signed by `issuer` (self-signed without one)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.cert.subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder.sign(issuer.key if issuer else key, hashes.SHA256())


@functools.cache
def leaf() -> Pair:
    """A self-signed RSA certificate and its key."""
    return Pair(rsa_key("leaf"), issue("azid test leaf", rsa_key("leaf")))


@functools.cache
def other() -> Pair:
    """Another self-signed RSA certificate, registered nowhere."""
    return Pair(rsa_key("other"), issue("azid other leaf", rsa_key("other")))


@functools.cache
def ca() -> Pair:
    """A certificate authority."""
    return Pair(rsa_key("ca"), issue("azid test CA", rsa_key("ca"), ca=True))


@functools.cache
def issued() -> Pair:
    """A leaf issued by `ca()`: its chain is [leaf, CA]."""
    return Pair(rsa_key("issued"), issue("azid issued leaf", rsa_key("issued"), ca()))


@functools.cache
def ec_leaf() -> Pair:
    """A self-signed certificate with an EC key, which client assertions cannot use."""
    key = ec.generate_private_key(ec.SECP256R1())
    return Pair(key, issue("azid EC leaf", key))
