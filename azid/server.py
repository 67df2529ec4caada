"""`EmulatorServer`: any `HttpRequest -> HttpResponse` handler (the emulator) served on 127.0.0.1 over
HTTP or HTTPS, a thread per connection. A handler with a `serve` method (the emulator) has its
`Served` replies acted out: the `delay` slept before answering, the connection closed after `drop`
body bytes.

It binds the loopback address only: the emulator hands out tokens to whoever asks, so it must not be
reachable from another machine. For HTTPS it makes a CA and a server certificate for 127.0.0.1 and
localhost with cryptography, in a temporary directory removed on close; `ca_file` names the CA's PEM
so that clients can trust it (SSL_CERT_FILE, REQUESTS_CA_BUNDLE) without trusting anything else.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

from azid_core.effects import HttpRequest
from azid_core.errors import AzidError
from azid_core.testing.service import Served

if TYPE_CHECKING:
    from collections.abc import Callable

    from azid_core.effects import HttpResponse

__all__ = ["LOOPBACK", "EmulatorServer", "ServerError", "write_certificates"]

LOOPBACK = "127.0.0.1"
_SERVER_LIFETIME = datetime.timedelta(days=1)  # a certificate for one run, not for keeping


class ServerError(AzidError):
    """The server cannot start: an address other than loopback, or a port already taken."""


def write_certificates(folder: Path) -> tuple[Path, Path]:
    """A new CA (`ca.pem`) and a server certificate it signed for 127.0.0.1 and localhost with its key
    (`server.pem`, the chain `ssl.load_cert_chain` reads) in `folder`; their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "azid emulator CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _SERVER_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _SERVER_LIFETIME)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, chain_file = folder / "ca.pem", folder / "server.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        + server.public_bytes(serialization.Encoding.PEM)
    )
    return ca_file, chain_file


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, handler: Callable[[HttpRequest], HttpResponse], scheme: str) -> None:
        super().__init__((LOOPBACK, port), _RequestHandler)
        self.handler = handler
        self.scheme = scheme

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: a client that hangs up or fails the handshake is the client's business."""


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK wait between them
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = f"{self.server.scheme}://{LOOPBACK}:{self.server.server_address[1]}{self.path}"
        request = HttpRequest(self.command, url, tuple(self.headers.items()), body)
        serve = getattr(self.server.handler, "serve", None)
        served: Served = serve(request) if serve is not None else Served(self.server.handler(request))
        if served.delay:
            time.sleep(served.delay)  # a slow service, as the fault asked
        write_served(self, served)

    do_GET = do_POST = _serve

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: request lines would carry query strings onto the terminal."""


def write_served(handler: BaseHTTPRequestHandler, served: Served) -> None:
    """Write an emulator's answer on `handler`'s connection: status, headers (ours decide
    Content-Length and Connection), body, or part of it then a closed connection for a `drop` fault."""
    response = served.response
    handler.send_response(response.status)
    for name, value in response.headers:
        if name.lower() not in {"content-length", "connection"}:
            handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(response.body)))
    handler.end_headers()
    if served.drop is None:
        handler.wfile.write(response.body)
    else:
        # A connection lost mid-body: part of what Content-Length promised, then the socket closes.
        handler.wfile.write(response.body[: served.drop])
        handler.close_connection = True


class EmulatorServer:
    """`with EmulatorServer(handler, tls=True) as server:` then `server.url` and `server.ca_file`.

    `port=0` takes a free port. `host` must be 127.0.0.1 (ServerError otherwise, as for a port in use).
    `ca_file` is the CA's PEM path while the server runs (None over plain HTTP)."""

    def __init__(
        self,
        handler: Callable[[HttpRequest], HttpResponse],
        *,
        tls: bool = True,
        port: int = 0,
        host: str = LOOPBACK,
    ) -> None:
        if host != LOOPBACK:
            raise ServerError(f"the emulator binds {LOOPBACK} only, not {host}")
        try:
            self._server = _Server(port, handler, "https" if tls else "http")
        except OSError as exc:  # a port in use is the one an ordinary run meets
            raise ServerError(f"cannot listen on {LOOPBACK}:{port}: {exc.strerror}") from exc
        self.tls = tls
        self.ca_file: str | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        if tls:
            self._folder = tempfile.TemporaryDirectory(prefix="azid-emulator-")
            ca_file, chain_file = write_certificates(Path(self._folder.name))
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(chain_file)
            # The handshake happens in the connection's thread, not in the accept loop.
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            self.ca_file = str(ca_file)
        # serve_forever polls for shutdown; 0.05 s keeps close() prompt.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    def start(self) -> EmulatorServer:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        if self._folder is not None:
            self._folder.cleanup()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
