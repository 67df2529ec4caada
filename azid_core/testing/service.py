"""What every emulated endpoint shares: the RS256 signing key and its JWKS, faults described as data,
the request log, and acting a reply out in-process (PROTOCOL.md §0.1, §1.6).

`SigningKey` holds the RSA key an emulator signs every token with (access tokens, id_tokens,
federated tokens, managed-identity tokens): generated at the first signature (about 50 ms), or
given. Each token's header names the key's `kid`, the RFC 7638 thumbprint of its JWK, so a token
verifies with pyjwt against the published JWKS and a token from another emulator does not.

`Fault` is a reply to inject, as data, so an in-process handler and a socket server can both act
it out: a status, headers and body (a status sequence, a Retry-After, a malformed or oversized
body), a latency (`delay`) and a connection dropped after `drop` body bytes. `Service` is the base
of the emulators: `serve(request) -> Served` answers (a queued fault first); calling the service
is the in-process effect handler, which reports latency in `delays` instead of sleeping and turns
a drop into `TransportError("closed")`, as an adapter would. The clock is an argument.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, NamedTuple

from ..effects import HttpRequest, HttpResponse
from ..errors import TransportError

if TYPE_CHECKING:
    from collections.abc import Callable

    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

__all__ = ["JSON_HEADERS", "Fault", "Served", "Service", "SigningKey"]

JSON_HEADERS = (("Content-Type", "application/json; charset=utf-8"),)
# How far back `nbf` is dated: Entra back-dates its tokens so a client whose clock runs a little
# slow accepts them at once (real tokens carry nbf = iat - 300).
NOT_BEFORE_SKEW = 300


class SigningKey:
    """An RSA key that signs RS256 JWTs; generated on first use unless `private_key` is given."""

    def __init__(self, private_key: RSAPrivateKey | None = None) -> None:
        self._private_key = private_key
        self._jwk: dict[str, Any] | None = None

    @property
    def private_key(self) -> RSAPrivateKey:
        if self._private_key is None:
            from cryptography.hazmat.primitives.asymmetric import rsa

            self._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self._private_key

    @property
    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK with `kid` (RFC 7638 thumbprint), `use` and `alg`."""
        if self._jwk is None:
            import base64
            import hashlib

            from jwt.algorithms import RSAAlgorithm

            public: dict[str, Any] = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
            canonical = json.dumps({name: public[name] for name in ("e", "kty", "n")}, separators=(",", ":"))
            kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
            self._jwk = {**public, "kid": kid, "use": "sig", "alg": "RS256"}
        return self._jwk

    def jwks(self) -> dict[str, Any]:
        """The JWKS document publishing this key."""
        return {"keys": [self.jwk]}

    def sign(self, payload: dict[str, Any]) -> str:
        """`payload` as an RS256 JWT whose header names this key's `kid`."""
        import jwt

        return jwt.encode(payload, self.private_key, algorithm="RS256", headers={"kid": self.jwk["kid"]})

    def verify(self, token: str, *, require: tuple[str, ...] = ()) -> dict[str, Any]:
        """The claims of `token` once its signature checks out (times and audience not checked);
        `jwt.PyJWTError` otherwise."""
        import jwt

        claims: dict[str, Any] = jwt.decode(
            token,
            self.private_key.public_key(),
            algorithms=["RS256"],
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": list(require),
            },
        )
        return claims


class Fault(NamedTuple):
    """A reply to give instead of the service's own.

    `delay`: seconds the reply takes to come (a socket server sleeps; in-process it is reported).
    `drop`: close the connection after this many body bytes (None: send it all). `source`: only a
    request to this endpoint takes the fault (None: any token endpoint but the Pipelines OIDC one).
    """

    status: int = 500
    body: bytes | str | dict[str, Any] = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    drop: int | None = None
    source: str | None = None

    def response(self) -> HttpResponse:
        """The status, headers and body as an `HttpResponse` (a dict body as JSON)."""
        if isinstance(self.body, dict):
            return HttpResponse(self.status, JSON_HEADERS + self.headers, json.dumps(self.body).encode())
        payload = self.body.encode() if isinstance(self.body, str) else self.body
        return HttpResponse(self.status, self.headers, payload)


class Served(NamedTuple):
    """A reply and how to deliver it (see `Fault`)."""

    response: HttpResponse
    delay: float = 0.0
    drop: int | None = None


class Service(ABC):
    """The base of the emulators: clock, key, request log, fault queue; `_source` and `_route` are
    the subclass's (which endpoint a request addresses, and its answer)."""

    def __init__(self, *, clock: Callable[[], float], signing_key: RSAPrivateKey | None = None) -> None:
        self.clock = clock
        self.key = SigningKey(signing_key)
        self.requests: list[HttpRequest] = []
        self.delays: list[float] = []  # the latency of each in-process reply that had one (not slept)
        self._faults: list[Fault] = []

    def fail_next(
        self,
        status: int | Fault,
        body: bytes | str | dict[str, Any] = b"",
        headers: tuple[tuple[str, str], ...] = (),
        *,
        source: str | None = None,
    ) -> None:
        """Answer the next token request (to `source`, or to any) with this reply or `Fault` instead
        (queued, first in first out: several calls make a status sequence)."""
        fault = status if isinstance(status, Fault) else Fault(status, body, headers, source=source)
        self._faults.append(fault)

    def decode(self, token: str) -> dict[str, Any]:
        """The claims of a token this emulator signed (signature checked; times and audience not)."""
        return self.key.verify(token)

    def jwks(self) -> dict[str, Any]:
        """The JWKS document the emulator publishes."""
        return self.key.jwks()

    def sign(self, payload: dict[str, Any]) -> str:
        """`payload` signed as this emulator signs its tokens."""
        return self.key.sign(payload)

    def serve(self, request: HttpRequest) -> Served:
        """Record `request` and answer it: with the first queued fault it takes, else the service's reply."""
        self.requests.append(request)
        source = self._source(request)
        fault = next((f for f in self._faults if self._takes(f, source)), None)
        if fault is None:
            return Served(self._route(request))
        self._faults.remove(fault)
        return Served(fault.response(), fault.delay, fault.drop)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """The in-process effect handler: the reply as an adapter would deliver it (§0.1)."""
        response, delay, drop = self.serve(request)
        where = request.url.partition("?")[0]
        if delay:
            self.delays.append(delay)
            if delay >= request.timeout:
                raise TransportError("timeout", f"{where}: no reply within {request.timeout} s")
        if drop is not None:
            raise TransportError("closed", f"{where}: the connection closed after {drop} body bytes")
        if len(response.body) > request.max_response_bytes:
            raise TransportError("too_large", f"the response body is over {request.max_response_bytes} bytes")
        return response

    @staticmethod
    def _takes(fault: Fault, source: str | None) -> bool:
        if source is None:
            return False
        # A fault for "any token endpoint" is not spent on the Pipelines OIDC endpoint, which mints
        # the assertion for the token request the fault is meant for.
        return fault.source == source or (fault.source is None and source != "pipelines")

    @abstractmethod
    def _source(self, request: HttpRequest) -> str | None:
        """The token endpoint `request` addresses (faults apply to it), or None."""

    @abstractmethod
    def _route(self, request: HttpRequest) -> HttpResponse:
        """The service's own answer to `request`."""
