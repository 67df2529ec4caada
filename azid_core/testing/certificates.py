"""The emulator's check of certificate-signed client assertions (PROTOCOL.md §2.2).

`check_certificate_assertion` verifies an assertion as Entra does: a supported algorithm, a thumbprint
naming a certificate registered on the app, a signature by that certificate's key, the audience (the
URL the assertion was posted to), the time window, and `iss` = `sub` = the client ID. Each refusal is
the AADSTS code Entra answers with (codes from Microsoft's AADSTS reference and the Azure SDK
troubleshooting guides). `certificate_der` normalizes what `EntraApp.add_certificate` registers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .entra import EntraFault

if TYPE_CHECKING:
    from .entra import EntraApp

__all__ = ["certificate_der", "check_certificate_assertion"]


def certificate_der(certificate: bytes) -> bytes:
    """The DER of a PEM (its first CERTIFICATE block) or DER certificate; invalid input raises ValueError."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    if b"-----BEGIN" in certificate:
        return x509.load_pem_x509_certificates(certificate)[0].public_bytes(Encoding.DER)
    return x509.load_der_x509_certificate(certificate).public_bytes(Encoding.DER)


def _malformed(text: str) -> EntraFault:
    return EntraFault(400, "invalid_request", 50027, f"JWT token is invalid or malformed: {text}.")


def check_certificate_assertion(
    app: EntraApp, assertion: str, header: dict[str, Any], *, audience: str, now: float
) -> EntraFault | None:
    """None if `assertion` proves to be `app` at `now`, posted to `audience`; else Entra's refusal."""
    import base64
    import hashlib

    import jwt
    from cryptography import x509

    algorithm = header.get("alg")
    if algorithm not in ("PS256", "RS256"):
        return _malformed(f"the algorithm {algorithm!r} is not supported")
    if "x5t#S256" in header:
        name, digest = "x5t#S256", hashlib.sha256
    else:
        name, digest = "x5t", hashlib.sha1
    thumbprint = header[name]
    # Entra also takes a padded thumbprint: msal (azure-identity's sync path) sends one (§10 item 3).
    wanted = thumbprint.rstrip("=") if isinstance(thumbprint, str) else thumbprint
    registered = next(
        (
            der
            for der in app.certificates
            if base64.urlsafe_b64encode(digest(der).digest()).rstrip(b"=").decode() == wanted
        ),
        None,
    )
    if registered is None:
        return EntraFault(
            401,
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on "
            "application. [Reason - The key was not found., "
            f"Thumbprint of key used by client: '{thumbprint}']",
        )
    key = x509.load_der_x509_certificate(registered).public_key()
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            key,  # type: ignore[arg-type]  # an RSA key: only RSA certificates sign assertions here
            algorithms=[algorithm],
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_iss": False,
                # Entra needs no `nbf`: msal's assertions have none (azid's do, §2.2).
                "require": ["aud", "iss", "sub", "jti", "exp"],
            },
        )
    except jwt.InvalidSignatureError:
        return EntraFault(
            401,
            "invalid_client",
            700027,
            "Client assertion contains an invalid signature. [Reason - The provided signature value did not "
            f"match the expected signature value., Thumbprint of key used by client: '{thumbprint}']",
        )
    except jwt.PyJWTError as exc:
        return _malformed(str(exc))
    if claims["iss"] != app.client_id or claims["sub"] != app.client_id:
        return EntraFault(
            401,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        )
    if claims["aud"] != audience:
        return EntraFault(
            401, "invalid_client", 700023, "Client assertion audience claim does not match Realm issuer."
        )
    # NumericDates may have a fraction (RFC 7519 §2): msal's do. Without `nbf`, `iat` bounds it.
    nbf, exp = claims.get("nbf", claims.get("iat", 0)), claims["exp"]
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in (nbf, exp)):
        return _malformed("nbf and exp must be numbers")
    if not nbf <= now < exp:
        return EntraFault(
            401,
            "invalid_client",
            700024,
            f"Client assertion is not within its valid time range. Current time: {int(now)}, "
            f"assertion valid from {nbf}, expiry time of assertion {exp}.",
        )
    return None
