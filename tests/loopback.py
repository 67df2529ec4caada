"""A real HTTP/1.1 server on 127.0.0.1 that serves any `HttpRequest -> HttpResponse` handler.

Used by the adapter tests and the benchmarks to put azid on a real socket, with TLS from a
throwaway trustme CA. Each connection gets a thread; keep-alive is on, as in real services.
"""

from __future__ import annotations

import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import trustme

from azid_core.effects import HttpRequest, HttpResponse

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

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: clients that hang up or fail the handshake are part of the tests."""


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each reply waits for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = f"{self.server.scheme}://127.0.0.1:{self.server.server_address[1]}{self.path}"
        request = HttpRequest(self.command, url, tuple(self.headers.items()), body)
        if self.server.delay:
            time.sleep(self.server.delay)  # the server is slow; clients' clocks are not involved
        response = self.server.handler(request)
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in {"content-length", "connection"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_POST = _serve

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: test output must not carry request lines."""


class LoopbackServer:
    """`with LoopbackServer(handler, tls=True) as server:` then use `server.url` and the trust
    material (`server.ca_file`, `server.client_context()`)."""

    _ca: trustme.CA | None = None

    def __init__(
        self, handler: Callable[[HttpRequest], HttpResponse], *, tls: bool = True, delay: float = 0.0
    ) -> None:
        self._server = _Server(handler, delay, "https" if tls else "http")
        self.tls = tls
        if tls:
            ca = self.ca()
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
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
