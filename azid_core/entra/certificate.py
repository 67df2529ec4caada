"""Certificate credentials: an application proving itself with an X.509 certificate's key (PROTOCOL.md §2.2).

This module owns reading a certificate (PEM or PKCS#12) into a `ClientCertificate`, the client
assertion it signs (`certificate_assertion`), and `CertificateCredential`, the grant that sends it.
cryptography and pyjwt (the `cert` extra) are imported on first use, inside functions: constructing a
credential, or importing this module, loads neither.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ..effects import FileContent, ReadFile
from ..errors import AzidError, ConfigError, TransportError
from ..wire import new_request_id
from .assertion import JWT_BEARER
from .confidential import EntraCredential, EntraForm

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from ..effects import Flow

__all__ = [
    "CertificateCredential",
    "CertificateSigner",
    "ClientCertificate",
    "ClientCertificateCredential",
    "certificate_assertion",
    "load_client_certificate",
]

MAX_CERTIFICATE_BYTES = 1 << 20  # §2.2: a certificate file is read with a 1 MiB limit
ASSERTION_LIFETIME = 600  # §2.2, §10 item 20: one lifetime, sync or async
ALGORITHMS = ("PS256", "RS256")

# The first private-key block of a PEM file (§2.2). Finding PEM armour is text; what is inside it is
# left to cryptography.
_PEM_KEY = re.compile(
    rb"-----BEGIN (PRIVATE KEY|RSA PRIVATE KEY|ENCRYPTED PRIVATE KEY)-----.*?-----END \1-----", re.DOTALL
)
_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class ClientCertificate(NamedTuple):
    """A parsed client certificate: its RSA key, the leaf's DER, the chain (leaf first), thumbprints.

    `x5t` and `x5t_s256` are base64url without padding of SHA-1 and SHA-256 of the leaf's DER (§2.2,
    §10 item 3). The repr shows only the SHA-256 thumbprint and the chain's length.
    """

    private_key: RSAPrivateKey
    leaf_der: bytes
    chain_der: tuple[bytes, ...]
    x5t: str
    x5t_s256: str

    def __repr__(self) -> str:
        return f"ClientCertificate(x5t#S256={self.x5t_s256!r}, {len(self.chain_der)} certificates)"


def _password_bytes(password: str | bytes | None, owner: str) -> bytes | None:
    if password is None or isinstance(password, bytes):
        return password
    try:
        return password.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{owner}: password is invalid: it cannot be encoded as UTF-8") from None


def load_client_certificate(
    data: bytes, password: str | bytes | None, *, owner: str, name: str
) -> ClientCertificate:
    """Read a PEM or PKCS#12 certificate file with its RSA private key (§2.2).

    Data containing `-----BEGIN` is PEM: its first PRIVATE KEY, RSA PRIVATE KEY or ENCRYPTED PRIVATE
    KEY block, and every CERTIFICATE block in order. Anything else is PKCS#12. `password` (str is
    UTF-8) decrypts PKCS#12 or an encrypted key. The leaf is the certificate holding the key's public
    half; the chain is the leaf, then the others in file order.

    Raises:  ConfigError `"<owner>: <name> is invalid: <problem>"` for any unreadable input; the
             message never shows the password or key material.
    """
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    def invalid(problem: str) -> ConfigError:
        return ConfigError(f"{owner}: {name} is invalid: {problem}")

    secret = _password_bytes(password, owner)
    if b"-----BEGIN" in data:
        key, certificates = _load_pem(data, secret, invalid)
    else:
        key, certificates = _load_pkcs12(data, secret, invalid)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise invalid("the private key is not an RSA key (client assertions are signed with PS256 or RS256)")
    if not certificates:
        raise invalid("it holds no certificate")
    public = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    leaf = next(
        (
            c
            for c in certificates
            if c.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == public
        ),
        None,
    )
    if leaf is None:
        raise invalid("no certificate in it matches the private key")
    chain = (leaf, *(c for c in certificates if c is not leaf))
    ders = tuple(c.public_bytes(Encoding.DER) for c in chain)
    import hashlib

    # x5t is SHA-1 by definition (RFC 7515 §4.1.7): a thumbprint naming the certificate, not a check.
    sha1 = hashlib.sha1(ders[0], usedforsecurity=False).digest()
    return ClientCertificate(key, ders[0], ders, _b64url(sha1), _b64url(hashlib.sha256(ders[0]).digest()))


def _load_pem(
    data: bytes, password: bytes | None, invalid: Callable[[str], ConfigError]
) -> tuple[object, list[Any]]:
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    block = _PEM_KEY.search(data)
    if block is None:
        raise invalid("a PEM file needs a PRIVATE KEY, RSA PRIVATE KEY or ENCRYPTED PRIVATE KEY block")
    try:
        key: object = load_pem_private_key(block.group(0), password)
    except TypeError:
        # cryptography's two password mismatches; its message is static, but ours says which it is.
        if password is None:
            raise invalid("the private key is encrypted and no password was given") from None
        raise invalid("a password was given but the private key is not encrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise invalid("the private key cannot be read (wrong password, or not a valid key)") from None
    if _PEM_CERTIFICATE not in data:
        return key, []
    try:
        certificates = x509.load_pem_x509_certificates(data)  # every CERTIFICATE block, in file order
    except ValueError:
        raise invalid("a CERTIFICATE block cannot be read") from None
    return key, certificates


def _load_pkcs12(
    data: bytes, password: bytes | None, invalid: Callable[[str], ConfigError]
) -> tuple[object, list[Any]]:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        key, certificate, additional = pkcs12.load_key_and_certificates(data, password)
    except (ValueError, UnsupportedAlgorithm):
        opener = "this password" if password is not None else "no password"
        raise invalid(f"not PEM, and not PKCS#12 data that {opener} opens") from None
    if key is None:
        raise invalid("the PKCS#12 data holds no private key")
    return key, ([certificate] if certificate is not None else []) + list(additional)


def certificate_assertion(
    cert: ClientCertificate,
    *,
    client_id: str,
    audience: str,
    now: float,
    entropy: Callable[[int], bytes],
    algorithm: str = "PS256",
    send_chain: bool = False,
) -> str:
    """A client assertion signed with `cert`'s key (§2.2): a compact JWT, base64url without padding.

    `algorithm` is PS256 (header `x5t#S256`) or RS256 (header `x5t`, for ADFS and azure-identity's
    sync path); `send_chain` adds `x5c`, padded standard base64 of each DER, leaf first (§10 item 3).
    `audience` is the token URL the assertion is posted to.
    """
    import base64

    import jwt

    headers: dict[str, Any] = {"x5t": cert.x5t} if algorithm == "RS256" else {"x5t#S256": cert.x5t_s256}
    if send_chain:
        headers["x5c"] = [base64.b64encode(der).decode("ascii") for der in cert.chain_der]
    issued = int(now)
    # Payload fields in §2.2 order; pyjwt keeps it, and writes compact JSON. It sorts the header's
    # keys, which puts `alg` and `typ` first as §2.2 shows (then `x5c`, then the thumbprint).
    payload = {
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": new_request_id(entropy),
        "nbf": issued,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    return jwt.encode(payload, cert.private_key, algorithm=algorithm, headers=headers)


class CertificateSigner:
    """A client certificate (a file or bytes) and the assertions it signs (§2.2).

    The certificate is read and parsed at the first assertion, then remembered; it is transient
    (§7.4): its key cannot be pickled, so a pickled signer parses again. Shared by every grant that
    authenticates its client with a certificate.
    """

    certificate: ClientCertificate | None

    def __init__(
        self,
        *,
        path: str | None,
        data: bytes | None,
        password: str | bytes | None,
        owner: str,
        name: str,
        algorithm: str = "PS256",
        send_chain: bool = False,
    ) -> None:
        self._path = path
        self._data = data
        self._password = password
        self._owner = owner
        self._name = name
        self._algorithm = algorithm
        self._send_chain = send_chain
        self.certificate = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "certificate": None}

    @property
    def secrets(self) -> tuple[str, ...]:
        """The password, to mask wherever text is shown (§0.7)."""
        password = self._password
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        return (password,) if password else ()

    def assertion(
        self, *, client_id: str, audience: str, adfs: bool, now: float, entropy: Callable[[int], bytes]
    ) -> Flow[str]:
        """A new client assertion for `audience`, the token URL it is posted to.

        Yields:  ReadFile, the first time, for a path.
        Raises:  ConfigError for a missing, unreadable, over-size or invalid certificate: the one
                 ConfigError that may follow an effect.
        """
        certificate = self.certificate
        if certificate is None:
            certificate = self.certificate = yield from self._load()
        return certificate_assertion(
            certificate,
            client_id=client_id,
            audience=audience,
            now=now,
            entropy=entropy,
            algorithm="RS256" if adfs else self._algorithm,  # ADFS takes only RS256 with `x5t` (§2.2)
            send_chain=self._send_chain,
        )

    def _load(self) -> Flow[ClientCertificate]:
        owner, path = self._owner, self._path
        if path is None:
            assert self._data is not None  # the credential requires one of the two
            return load_client_certificate(self._data, self._password, owner=owner, name=self._name)
        try:
            reply = yield ReadFile(path, max_bytes=MAX_CERTIFICATE_BYTES)
        except TransportError as exc:  # file_not_found or file_error, with the path in its detail
            raise ConfigError(f"{owner}: {self._name} is invalid: {exc.detail}") from exc
        if not isinstance(reply, FileContent) or reply.data is None:
            raise AzidError(
                f"the adapter answered ReadFile with {type(reply).__name__}, not a file's content"
            )
        if len(reply.data) > MAX_CERTIFICATE_BYTES:
            raise ConfigError(f"{owner}: {self._name} is invalid: {path} is larger than 1 MiB")
        return load_client_certificate(reply.data, self._password, owner=owner, name=self._name)


class _PathLike(Protocol):
    def __fspath__(self) -> str: ...


class CertificateCredential(EntraCredential):
    """An application authenticating with a certificate's private key (§2, grant "certificate").

    >>> core = CertificateCredential(tenant_id, client_id, "/etc/app/cert.pem")
    >>> core = CertificateCredential(tenant_id, client_id, certificate_data=pfx, password="...")

    The certificate is read and parsed at the first token request, then remembered (not pickled).
    """

    # §7.1 keys certificates by `x5t#S256` too; it is unknown until the file is read, and every
    # credential object owns its cache, so the key stays `cert:{authority}:{client_id}`.
    _identity_prefix = "cert"

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        certificate_path: str | _PathLike | None = None,
        *,
        certificate_data: bytes | None = None,
        password: str | bytes | None = None,
        send_certificate_chain: bool = False,
        assertion_algorithm: str = "PS256",
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
        owner = type(self).__name__
        if (certificate_path is None) == (certificate_data is None):
            raise ConfigError(
                f"{owner}: certificate_path is invalid: "
                "exactly one of certificate_path and certificate_data is required"
            )
        path: object = certificate_path
        if path is not None and not isinstance(path, str):
            fspath = getattr(path, "__fspath__", None)  # a pathlib.Path, say
            path = fspath() if fspath is not None else None
        if certificate_data is None and (not isinstance(path, str) or not path):
            raise ConfigError(f"{owner}: certificate_path is invalid: a non-empty path string is required")
        if certificate_data is not None:
            if not isinstance(certificate_data, (bytes, bytearray, memoryview)) or not certificate_data:
                raise ConfigError(f"{owner}: certificate_data is invalid: non-empty bytes are required")
            certificate_data = bytes(certificate_data)
        if password is not None and not isinstance(password, (str, bytes)):
            raise ConfigError(f"{owner}: password is invalid: a str or bytes is required")
        if assertion_algorithm not in ALGORITHMS:
            raise ConfigError(f"{owner}: assertion_algorithm is invalid: PS256 or RS256 is required")
        self._signer = CertificateSigner(
            path=path if isinstance(path, str) else None,
            data=certificate_data,
            password=password,
            owner=owner,
            name="certificate_data" if certificate_data is not None else "certificate_path",
            algorithm=assertion_algorithm,
            send_chain=bool(send_certificate_chain),
        )

    def _form(self, scope: str, claims: str | None, url: str, now: float) -> Flow[EntraForm]:
        # `url` is the discovered ADFS endpoint exactly when the resolved tenant is `adfs`
        # (`_token_endpoint`), which `_form` is not told directly.
        assertion = yield from self._signer.assertion(
            client_id=self._client_id,
            audience=url,
            adfs=url == self._adfs_endpoint,
            now=now,
            entropy=self.entropy,
        )
        fields = [
            ("client_id", self._client_id),
            ("grant_type", "client_credentials"),
            ("client_info", "1"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
            ("scope", scope),
        ]
        if claims:
            fields.append(("claims", claims))
        return EntraForm(fields, (assertion, *self._signer.secrets))


#: The Rust `azure_identity` crate's name for the same credential.
ClientCertificateCredential = CertificateCredential
