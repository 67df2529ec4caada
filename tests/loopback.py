"""A real HTTP/1.1 server on 127.0.0.1 that serves any `HttpRequest -> HttpResponse` handler.

Used by the adapter tests and the benchmarks to put azid on a real socket, with TLS from a
throwaway trustme CA (or a certificate the test gives, such as a self-signed one no CA vouches for).
Each connection gets a thread; keep-alive is on, as in real services. A handler with a `serve` method
(the emulators) has its `Served` replies acted out: a `delay` slept before answering, a `drop` that
closes the connection after that many body bytes. The server counts the requests
and the raw bytes it received, so a test can assert that a client sent nothing. `TrapProxy` is a
listener that records every connection, for proxy tests.
"""

from __future__ import annotations

import io
import socket
import ssl
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trustme

from azid.server import write_served
from azid_core.effects import HttpRequest, HttpResponse
from azid_core.testing.service import Served

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from types import TracebackType


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 512  # hundreds of clients connect at once in the single-flight tests

    def __init__(self, handler: Callable[[HttpRequest], HttpResponse], delay: float, scheme: str) -> None:
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        self.handler = handler
        self.delay = delay
        self.scheme = scheme
        self.requests_received = 0
        self.bytes_received = 0
        self.count_lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: clients that hang up or fail the handshake are part of the tests."""

    def count(self, *, requests: int = 0, raw: int = 0) -> None:
        with self.count_lock:
            self.requests_received += requests
            self.bytes_received += raw


class _CountingReader(io.RawIOBase):
    """A connection's input that adds every byte read to the server's count."""

    def __init__(self, source: io.BufferedIOBase, server: _Server) -> None:
        super().__init__()
        self._source = source
        self._server = server

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._source.read1(len(buffer))
        self._server.count(raw=len(data))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._source.close()
        super().close()


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each reply waits for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.rfile = io.BufferedReader(_CountingReader(self.rfile, self.server))

    def _serve(self) -> None:
        self.server.count(requests=1)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = f"{self.server.scheme}://127.0.0.1:{self.server.server_address[1]}{self.path}"
        request = HttpRequest(self.command, url, tuple(self.headers.items()), body)
        serve = getattr(self.server.handler, "serve", None)
        served: Served = serve(request) if serve is not None else Served(self.server.handler(request))
        delay = self.server.delay + served.delay
        if delay:
            time.sleep(delay)  # the server is slow; clients' clocks are not involved
        write_served(self, served)

    do_GET = do_POST = _serve

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: test output must not carry request lines."""


class LoopbackServer:
    """`with LoopbackServer(handler, tls=True) as server:` then use `server.url` and the trust
    material (`server.ca_file`, `server.client_context()`).

    `certificate=(cert_pem, key_pem)` presents that certificate instead of one from the trustme CA.
    `requests_received` and `bytes_received` count what clients sent; `server_names` lists the SNI
    name of each handshake."""

    _ca: trustme.CA | None = None

    def __init__(
        self,
        handler: Callable[[HttpRequest], HttpResponse],
        *,
        tls: bool = True,
        delay: float = 0.0,
        certificate: tuple[bytes, bytes] | None = None,
    ) -> None:
        self._server = _Server(handler, delay, "https" if tls else "http")
        self.tls = tls
        self.server_names: list[str | None] = []  # the SNI name of each TLS handshake (None: none sent)
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.sni_callback = lambda _socket, name, _context: self.server_names.append(name)
            if certificate is None:
                self.ca().issue_cert("127.0.0.1", "localhost").configure_cert(context)
            else:
                with tempfile.TemporaryDirectory() as folder:  # ssl loads certificates from files only
                    chain = Path(folder, "chain.pem")
                    chain.write_bytes(certificate[1] + certificate[0])
                    context.load_cert_chain(chain)
            # Handshake in the connection's own thread, not in the accept loop.
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        # shutdown() waits for the loop's next poll: the default 0.5 s would be most of a test's time.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    @classmethod
    def ca(cls) -> trustme.CA:
        if cls._ca is None:
            cls._ca = trustme.CA()
        return cls._ca

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def requests_received(self) -> int:
        """HTTP requests the server read (each counted before its handler ran)."""
        return self._server.requests_received

    @property
    def bytes_received(self) -> int:
        """Bytes clients sent after their TLS handshakes (or at all, over plain TCP)."""
        return self._server.bytes_received

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca().configure_trust(context)
        return context

    def ca_file(self) -> AbstractContextManager[str]:
        """`with server.ca_file() as path:` the CA certificate as a PEM file."""
        return self.ca().cert_pem.tempfile()

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class TrapProxy:
    """A plain TCP listener on 127.0.0.1 standing in for a proxy: it records each connection and what
    arrived first on it (a CONNECT line, or an absolute-URL request), then hangs up.

    `with TrapProxy() as trap:` point HTTP(S)_PROXY at `trap.url`; `trap.connections` counts."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.01)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.first_lines: list[bytes] = []
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with client:
                client.settimeout(2)
                try:
                    self.first_lines.append(client.recv(65536).split(b"\r\n", 1)[0])
                except OSError:
                    self.first_lines.append(b"")

    def __enter__(self) -> TrapProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()


# -- nothing but loopback --

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", b"127.0.0.1", b"localhost", b"::1"})
_hooked: list[bool] = []  # non-empty once the audit hook is installed (hooks cannot be removed)


class OffLoopbackError(RuntimeError):
    """A test or benchmark tried to reach something other than the loopback interface."""


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and address and address[0] not in _LOOPBACK:
            raise OffLoopbackError(f"only 127.0.0.1 may be contacted; refused connect to {address!r}")
    elif event == "socket.getaddrinfo":
        host = args[0]
        if host is not None and host not in _LOOPBACK:
            raise OffLoopbackError(f"only 127.0.0.1 may be contacted; refused to resolve {host!r}")


def guard_network() -> None:
    """Refuse, process-wide, any name lookup or connection that is not to the loopback interface
    (the default IMDS address and every Microsoft host included)."""
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked.append(True)
