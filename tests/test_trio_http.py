"""Tests for azid_trio.http: h11 servers on trio memory streams, and real TLS on 127.0.0.1."""

from __future__ import annotations

import hashlib
import ssl
from functools import partial
from typing import TYPE_CHECKING, Literal

import h11
import pytest
import trio
import trio.testing
import trustme

from azid_core.effects import HttpRequest, HttpResponse
from azid_core.errors import TransportError
from azid_trio.http import TrioHttp

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

Header = tuple[bytes, bytes]


# An h11 server playing the other end ------------------------------------------------------------------


class ServerConn:
    """The server side of one connection: h11 in server role, plus every byte the client sent."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER)
        self.raw = bytearray()

    async def read_request(self) -> tuple[h11.Request, bytes] | None:
        """The next request and its body, or None when the client closed the connection."""
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                data = await self.stream.receive_some(65536)
                self.raw += data
                self.h11.receive_data(bytes(data))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return request, bytes(body)
            else:
                return None

    async def send(self, *events: h11.Event) -> None:
        for event in events:
            data = self.h11.send(event)
            if data:
                await self.stream.send_all(data)

    async def respond(
        self, status: int = 200, body: bytes = b"", headers: Sequence[Header] = (), *, chunked: bool = False
    ) -> None:
        """Send a whole response; `chunked` sends the body in 3-byte chunks without Content-Length."""
        framing: list[Header] = [] if chunked else [(b"Content-Length", str(len(body)).encode())]
        await self.send(h11.Response(status_code=status, headers=[*headers, *framing]))
        step = 3 if chunked else max(len(body), 1)
        for start in range(0, len(body), step):
            await self.send(h11.Data(data=body[start : start + step]))
        await self.send(h11.EndOfMessage())


async def ok(conn: ServerConn, request: h11.Request, body: bytes) -> None:
    await conn.respond(200, b"ok:" + request.target)


async def serve(
    conn: ServerConn,
    handler: Callable[[ServerConn, h11.Request, bytes], Awaitable[None]],
    seen: list[tuple[h11.Request, bytes]],
    *,
    max_requests: int | None = None,
    idle_close: Literal["close", "eof"] = "close",
) -> None:
    """Answer requests until the client leaves, or until `max_requests`, then drop the connection
    without telling h11 (like a server's idle timeout): "close" closes both ways, "eof" only
    half-closes so the client can still write."""
    served = 0
    try:
        while max_requests is None or served < max_requests:
            got = await conn.read_request()
            if got is None:
                return
            seen.append(got)
            served += 1
            await handler(conn, *got)
            if conn.h11.our_state is not h11.DONE or conn.h11.their_state is not h11.DONE:
                return
            conn.h11.start_next_cycle()
        if idle_close == "eof":
            assert isinstance(conn.stream, trio.abc.HalfCloseableStream)
            await conn.stream.send_eof()
            while await conn.stream.receive_some(65536):
                pass
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
        pass
    finally:
        await trio.aclose_forcefully(conn.stream)


class FakeNet:
    """An `open_stream` that hands out memory streams, each with `serve` running on its far end."""

    def __init__(
        self,
        nursery: trio.Nursery,
        handler: Callable[[ServerConn, h11.Request, bytes], Awaitable[None]] = ok,
        *,
        max_requests: int | None = None,
        idle_close: Literal["close", "eof"] = "close",
        server_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.nursery = nursery
        self.handler = handler
        self.max_requests = max_requests
        self.idle_close = idle_close
        self.server_tls = server_tls
        self.opened: list[tuple[str, int]] = []
        self.conns: list[ServerConn] = []
        self.seen: list[tuple[h11.Request, bytes]] = []

    async def open_stream(self, host: str, port: int) -> trio.abc.Stream:
        self.opened.append((host, port))
        client, server = trio.testing.memory_stream_pair()
        stream: trio.abc.Stream = server
        if self.server_tls is not None:
            stream = trio.SSLStream(server, self.server_tls, server_side=True, https_compatible=True)
        conn = ServerConn(stream)
        self.conns.append(conn)
        self.nursery.start_soon(
            partial(serve, max_requests=self.max_requests, idle_close=self.idle_close),
            conn,
            self.handler,
            self.seen,
        )
        return client


def run_fake(test: Callable[[trio.Nursery], Awaitable[None]]) -> None:
    """Run `test` under a mock clock that jumps whenever every task waits, so deadlines cost no time."""

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await test(nursery)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def failure(http: TrioHttp, request: HttpRequest) -> TransportError:
    with pytest.raises(TransportError) as info:
        await http(request)
    return info.value


# Requests and responses on memory streams ----------------------------------------------------------


def test_get_sends_exactly_the_effect_plus_host() -> None:
    async def main(nursery: trio.Nursery) -> None:
        net = FakeNet(nursery)
        http = TrioHttp(open_stream=net.open_stream)
        headers = (("Accept", "application/json"), ("X-Thing", "v"))
        await http(HttpRequest("GET", "http://login.test:8080/a/b?x=1&y=2#frag", headers=headers))
        await http.aclose()
        assert net.opened == [("login.test", 8080)]
        assert bytes(net.conns[0].raw) == (
            b"GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: login.test:8080\r\n"
            b"Accept: application/json\r\nX-Thing: v\r\n\r\n"
        )

    run_fake(main)


def test_post_adds_content_length_and_sends_the_body() -> None:
    async def main(nursery: trio.Nursery) -> None:
        net = FakeNet(nursery)
        http = TrioHttp(open_stream=net.open_stream)
        form = (("Content-Type", "application/x-www-form-urlencoded"),)
        await http(HttpRequest("POST", "http://login.test/token", headers=form, body=b"grant_type=x"))
        await http.aclose()
        assert net.opened == [("login.test", 80)]
        assert bytes(net.conns[0].raw) == (
            b"POST /token HTTP/1.1\r\nHost: login.test\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 12\r\n\r\ngrant_type=x"
        )
        assert net.seen[0][1] == b"grant_type=x"

    run_fake(main)


@pytest.mark.parametrize(
    ("request_", "wire"),
    [
        (HttpRequest("PUT", "http://h.test"), b"PUT / HTTP/1.1\r\nHost: h.test\r\nContent-Length: 0\r\n\r\n"),
        (
            HttpRequest("DELETE", "http://h.test/x", body=b"abc"),
            b"DELETE /x HTTP/1.1\r\nHost: h.test\r\nContent-Length: 3\r\n\r\nabc",
        ),
        (
            HttpRequest("GET", "http://127.0.0.1:80/", headers=(("host", "other.test"),)),
            b"GET / HTTP/1.1\r\nhost: other.test\r\n\r\n",
        ),
    ],
)
def test_host_and_content_length_added_only_when_needed(request_: HttpRequest, wire: bytes) -> None:
    async def main(nursery: trio.Nursery) -> None:
        net = FakeNet(nursery)
        http = TrioHttp(open_stream=net.open_stream)
        await http(request_)
        await http.aclose()
        assert bytes(net.conns[0].raw) == wire

    run_fake(main)


def test_response_status_headers_and_body() -> None:
    async def handler(conn: ServerConn, request: h11.Request, body: bytes) -> None:
        headers: list[Header] = [(b"X-Ms-Request-Id", b"abc"), (b"X-Name", b"caf\xe9")]
        await conn.respond(201, b'{"a":1}', headers)

    async def main(nursery: trio.Nursery) -> None:
        http = TrioHttp(open_stream=FakeNet(nursery, handler).open_stream)
        response = await http(HttpRequest("GET", "http://h.test/"))
        await http.aclose()
        assert response == HttpResponse(
            201, (("X-Ms-Request-Id", "abc"), ("X-Name", "café"), ("Content-Length", "7")), b'{"a":1}'
        )

    run_fake(main)


def test_informational_responses_are_skipped() -> None:
    async def handler(conn: ServerConn, request: h11.Request, body: bytes) -> None:
        await conn.send(h11.InformationalResponse(status_code=100, headers=[]))
        await conn.send(h11.InformationalResponse(status_code=103, headers=[("Link", "</x>")]))
        await conn.respond(200, b"done")

    async def main(nursery: trio.Nursery) -> None:
        http = TrioHttp(open_stream=FakeNet(nursery, handler).open_stream)
        response = await http(HttpRequest("POST", "http://h.test/", body=b"x"))
        await http.aclose()
        assert (response.status, response.body) == (200, b"done")

    run_fake(main)


def test_redirects_are_returned_not_followed() -> None:
    async def handler(conn: ServerConn, request: h11.Request, body: bytes) -> None:
        await conn.respond(302, b"", [(b"Location", b"http://elsewhere.test/")])

    async def main(nursery: trio.Nursery) -> None:
        net = FakeNet(nursery, handler)
        http = TrioHttp(open_stream=net.open_stream)
        response = await http(HttpRequest("GET", "http://h.test/"))
        await http.aclose()
        assert response.status == 302
        assert response.header("location") == "http://elsewhere.test/"
        assert net.opened == [("h.test", 80)]
        assert len(net.seen) == 1

    run_fake(main)


@pytest.mark.parametrize("chunked", [False, True])
def test_body_limit_is_exact(chunked: bool) -> None:
    async def handler(conn: ServerConn, request: h11.Request, body: bytes) -> None:
        await conn.respond(200, b"x" * 10, chunked=chunked)

    async def main(nursery: trio.Nursery) -> None:
        net = FakeNet(nursery, handler)
        http = TrioHttp(open_stream=net.open_stream)
        response = await http(HttpRequest("GET", "http://h.test/", max_response_bytes=10))
        assert response.body == b"x" * 10
        error = await failure(http, HttpRequest("GET", "http://h.test/", max_response_bytes=9))
        assert error.kind == "too_large"
        assert "h.test:80" in error.detail
        # The oversized connection was discarded, so the next request needs a new one.
        await http(HttpRequest("GET", "http://h.test/"))
        await http.aclose()
        assert len(net.opened) == 2

    run_fake(main)


# Connection reuse ------------------------------------------------------------------------------------


def test_sequential_requests_reuse_one_connection() -> None:
    async def main(nursery: trio.Nursery) -> None:
        net = FakeNet(nursery)
        http = TrioHttp(open_stream=net.open_stream)
        first = await http(HttpRequest("GET", "http://h.test/1"))
        second = await http(HttpRequest("POST", "http://h.test/2", body=b"b"))
        other = await http(HttpRequest("GET", "http://other.test/3"))
        await http.aclose()
        assert [first.body, second.body, other.body] == [b"ok:/1", b"ok:/2", b"ok:/3"]
        assert net.opened == [("h.test", 80), ("other.test", 80)]
        assert [request.target for request, _ in net.seen] == [b"/1", b"/2", b"/3"]

    run_fake(main)


def test_connection_close_response_is_not_reused() -> None:
    async def handler(conn: ServerConn, request: h11.Request, body: bytes) -> None:
        await conn.respond(200, b"bye", [(b"Connection", b"close")])

    async def main(nursery: trio.Nursery) -> None:
        net = FakeNet(nursery, handler)
        http = TrioHttp(open_stream=net.open_stream)
        await http(HttpRequest("GET", "http://h.test/"))
        await http(HttpRequest("GET", "http://h.test/"))
        await http.aclose()
        assert len(net.opened) == 2

    run_fake(main)


def test_concurrent_requests_get_their_own_connections_then_reuse_them() -> None:
    async def main(nursery: trio.Nursery) -> None:
        gate = trio.Event()
        waiting = 0

        async def handler(conn: ServerConn, request: h11.Request, body: bytes) -> None:
            nonlocal waiting
            waiting += 1
            if waiting == 2:
                gate.set()
            await gate.wait()  # answer neither until both are in flight
            await conn.respond(200, request.target)

        net = FakeNet(nursery, handler)
        http = TrioHttp(open_stream=net.open_stream)
        bodies: list[bytes] = []

        async def get(path: str) -> None:
            bodies.append((await http(HttpRequest("GET", f"http://h.test{path}"))).body)

        for _ in range(2):  # the second round runs on the two pooled connections
            async with trio.open_nursery() as requests:
                requests.start_soon(get, "/a")
                requests.start_soon(get, "/b")
            gate, waiting = trio.Event(), 0
        await http.aclose()
        assert sorted(bodies) == [b"/a", b"/a", b"/b", b"/b"]
        assert len(net.opened) == 2
        assert len(net.seen) == 4

    run_fake(main)


@pytest.mark.parametrize("idle_close", ["close", "eof"])
def test_dead_pooled_connection_is_retried_once_on_a_new_one(idle_close: Literal["close", "eof"]) -> None:
    async def main(nursery: trio.Nursery) -> None:
        net = FakeNet(nursery, max_requests=1, idle_close=idle_close)
        http = TrioHttp(open_stream=net.open_stream)
        await http(HttpRequest("GET", "http://h.test/1"))
        await trio.testing.wait_all_tasks_blocked()  # let the server drop the idle connection
        response = await http(HttpRequest("POST", "http://h.test/2", body=b"again"))
        await http.aclose()
        assert response.body == b"ok:/2"
        assert len(net.opened) == 2
        assert [(request.target, body) for request, body in net.seen] == [(b"/1", b""), (b"/2", b"again")]

    run_fake(main)


def test_the_retry_after_a_dead_pooled_connection_has_connect_timeout_to_set_up() -> None:
    async def main(nursery: trio.Nursery) -> None:
        net = FakeNet(nursery, max_requests=1)
        opened: list[float] = []

        async def first_then_never(host: str, port: int) -> trio.abc.Stream:
            opened.append(trio.current_time())
            if len(opened) == 1:
                return await net.open_stream(host, port)
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        http = TrioHttp(open_stream=first_then_never)
        await http(HttpRequest("GET", "http://h.test/1"))
        await trio.testing.wait_all_tasks_blocked()  # let the server drop the idle connection
        start = trio.current_time()
        error = await failure(http, HttpRequest("GET", "http://h.test/2", timeout=30.0, connect_timeout=2.0))
        assert (error.kind, error.detail) == ("connect", "h.test:80: connection setup timed out")
        assert trio.current_time() - start == pytest.approx(2.0)
        assert len(opened) == 2

    run_fake(main)


def test_retry_happens_only_once() -> None:
    async def main(nursery: trio.Nursery) -> None:
        async def handler(conn: ServerConn, request: h11.Request, body: bytes) -> None:
            if conn is net.conns[0]:
                await conn.respond(200)
            else:
                await conn.stream.aclose()  # every later connection dies on its first request

        net = FakeNet(nursery, handler, max_requests=1)
        http = TrioHttp(open_stream=net.open_stream)
        await http(HttpRequest("GET", "http://h.test/"))
        await trio.testing.wait_all_tasks_blocked()
        error = await failure(http, HttpRequest("GET", "http://h.test/"))
        await http.aclose()
        assert error.kind == "closed"
        assert len(net.opened) == 2

    run_fake(main)


def test_pooled_connection_failing_after_response_bytes_is_not_retried() -> None:
    async def handler(conn: ServerConn, request: h11.Request, body: bytes) -> None:
        if request.target == b"/1":
            await conn.respond(200)
        else:
            await conn.stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Len")
            await conn.stream.aclose()

    async def main(nursery: trio.Nursery) -> None:
        net = FakeNet(nursery, handler)
        http = TrioHttp(open_stream=net.open_stream)
        await http(HttpRequest("GET", "http://h.test/1"))
        error = await failure(http, HttpRequest("POST", "http://h.test/2", body=b"once"))
        await http.aclose()
        assert error.kind == "closed"
        assert len(net.opened) == 1
        assert [request.target for request, _ in net.seen] == [b"/1", b"/2"]

    run_fake(main)


def test_fresh_connection_closed_before_response_is_not_retried() -> None:
    async def handler(conn: ServerConn, request: h11.Request, body: bytes) -> None:
        await conn.stream.aclose()

    async def main(nursery: trio.Nursery) -> None:
        net = FakeNet(nursery, handler)
        http = TrioHttp(open_stream=net.open_stream)
        error = await failure(http, HttpRequest("GET", "http://h.test/"))
        await http.aclose()
        assert error.kind == "closed"
        assert error.detail == "h.test:80: peer closed the connection before the response ended"
        assert len(net.opened) == 1

    run_fake(main)


def test_aclose_closes_idle_connections() -> None:
    async def main(nursery: trio.Nursery) -> None:
        net = FakeNet(nursery)
        http = TrioHttp(open_stream=net.open_stream)
        await http(HttpRequest("GET", "http://h.test/"))
        await http.aclose()
        await trio.testing.wait_all_tasks_blocked()
        # The server saw the client leave: its serve loop ended and closed its end.
        with pytest.raises(trio.ClosedResourceError):
            await net.conns[0].stream.send_all(b"x")
        await http(HttpRequest("GET", "http://h.test/"))
        await http.aclose()
        assert len(net.opened) == 2

    run_fake(main)


# Failures on memory streams ------------------------------------------------------------------------


def test_peer_closing_mid_body_is_closed() -> None:
    async def handler(conn: ServerConn, request: h11.Request, body: bytes) -> None:
        await conn.send(
            h11.Response(status_code=200, headers=[("Content-Length", "10")]), h11.Data(data=b"12345")
        )
        await conn.stream.aclose()

    async def main(nursery: trio.Nursery) -> None:
        http = TrioHttp(open_stream=FakeNet(nursery, handler).open_stream)
        error = await failure(http, HttpRequest("GET", "http://h.test/"))
        await http.aclose()
        assert error.kind == "closed"
        assert isinstance(error.__cause__, h11.RemoteProtocolError)

    run_fake(main)


def test_garbage_from_server_is_closed() -> None:
    async def handler(conn: ServerConn, request: h11.Request, body: bytes) -> None:
        await conn.stream.send_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await trio.sleep_forever()

    async def main(nursery: trio.Nursery) -> None:
        http = TrioHttp(open_stream=FakeNet(nursery, handler).open_stream)
        error = await failure(http, HttpRequest("GET", "http://h.test/"))
        await http.aclose()
        assert error.kind == "closed"
        assert error.detail == "h.test:80: peer sent an invalid HTTP/1.1 response"
        assert "SSH" not in str(error)

    run_fake(main)


def test_server_that_never_answers_times_out() -> None:
    async def handler(conn: ServerConn, request: h11.Request, body: bytes) -> None:
        await trio.sleep_forever()

    async def main(nursery: trio.Nursery) -> None:
        net = FakeNet(nursery, handler)
        http = TrioHttp(open_stream=net.open_stream)
        start = trio.current_time()
        error = await failure(http, HttpRequest("GET", "http://h.test/", timeout=5.0, connect_timeout=1.0))
        assert trio.current_time() - start == pytest.approx(5.0)
        await http.aclose()
        assert error.kind == "timeout"
        assert len(net.seen) == 1  # the request was sent; only the answer was missing

    run_fake(main)


def test_timeout_mid_body_is_timeout() -> None:
    async def handler(conn: ServerConn, request: h11.Request, body: bytes) -> None:
        await conn.send(
            h11.Response(status_code=200, headers=[("Content-Length", "10")]), h11.Data(data=b"12")
        )
        await trio.sleep_forever()

    async def main(nursery: trio.Nursery) -> None:
        http = TrioHttp(open_stream=FakeNet(nursery, handler).open_stream)
        error = await failure(http, HttpRequest("GET", "http://h.test/", timeout=2.0))
        await http.aclose()
        assert error.kind == "timeout"

    run_fake(main)


@pytest.mark.parametrize(
    ("timeout", "connect_timeout", "waited"), [(30.0, 1.5, 1.5), (2.0, None, 2.0), (1.0, 9.0, 1.0)]
)
def test_slow_connect_is_connect(timeout: float, connect_timeout: float | None, waited: float) -> None:
    async def never(host: str, port: int) -> trio.abc.Stream:
        await trio.sleep_forever()

    async def main() -> None:
        http = TrioHttp(open_stream=never)
        start = trio.current_time()
        request = HttpRequest("GET", "http://h.test/", timeout=timeout, connect_timeout=connect_timeout)
        error = await failure(http, request)
        assert trio.current_time() - start == pytest.approx(waited)
        assert error.kind == "connect"
        assert error.detail == "h.test:80: connection setup timed out"

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_connection_set_up_as_its_time_runs_out_is_closed_unused() -> None:
    clock = trio.testing.MockClock()
    servers: list[trio.abc.Stream] = []

    async def late(host: str, port: int) -> trio.abc.Stream:
        client, server = trio.testing.memory_stream_pair()
        servers.append(server)
        clock.jump(2.0)  # past connect_timeout, with no checkpoint left to notice it
        return client

    async def main() -> None:
        http = TrioHttp(open_stream=late)
        error = await failure(http, HttpRequest("GET", "http://h.test/", timeout=30.0, connect_timeout=1.0))
        assert (error.kind, error.detail) == ("connect", "h.test:80: connection setup timed out")
        assert await servers[0].receive_some(1024) == b""  # closed, and not a byte sent

    trio.run(main, clock=clock)


def test_slow_tls_handshake_is_connect() -> None:
    async def main() -> None:
        ends: list[trio.abc.Stream] = []

        async def silent(host: str, port: int) -> trio.abc.Stream:
            client, server = trio.testing.memory_stream_pair()
            ends.append(server)  # nobody reads the ClientHello
            return client

        http = TrioHttp(open_stream=silent)
        error = await failure(http, HttpRequest("GET", "https://h.test/", connect_timeout=1.0))
        await ends[0].aclose()
        assert error.kind == "connect"

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_open_stream_oserror_is_connect() -> None:
    async def refuse(host: str, port: int) -> trio.abc.Stream:
        raise ConnectionRefusedError(111, "Connection refused")

    async def main() -> None:
        error = await failure(TrioHttp(open_stream=refuse), HttpRequest("GET", "http://h.test:81/"))
        assert (error.kind, error.detail) == ("connect", "h.test:81: could not connect")
        assert isinstance(error.__cause__, ConnectionRefusedError)

    trio.run(main)


@pytest.mark.parametrize("url", ["ftp://h.test/", "http:///nohost", "https://h.test:notaport/", "h.test/x"])
def test_bad_url_is_connect_and_opens_nothing(url: str) -> None:
    opened: list[str] = []

    async def record(host: str, port: int) -> trio.abc.Stream:
        opened.append(host)
        raise AssertionError("must not connect")

    async def main() -> None:
        error = await failure(TrioHttp(open_stream=record), HttpRequest("GET", url))
        assert error.kind == "connect"

    trio.run(main)
    assert opened == []


def test_invalid_header_is_not_sent_and_not_echoed() -> None:
    async def record(host: str, port: int) -> trio.abc.Stream:
        raise AssertionError("must not connect")

    async def main() -> None:
        request = HttpRequest("GET", "http://h.test/", headers=(("Authorization", "Bearer s3cret\r\nX: y"),))
        error = await failure(TrioHttp(open_stream=record), request)
        assert error.kind == "connect"
        assert "s3cret" not in str(error)

    trio.run(main)


def test_pin_on_plain_http_is_refused() -> None:
    async def record(host: str, port: int) -> trio.abc.Stream:
        raise AssertionError("must not connect")

    async def main() -> None:
        error = await failure(
            TrioHttp(open_stream=record), HttpRequest("GET", "http://h.test/", pin_sha1=b"\0" * 20)
        )
        assert error.kind == "tls"

    trio.run(main)


# TLS ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("example.test")


def server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


def trusting_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def leaf_sha1(cert: trustme.LeafCert) -> bytes:
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    return hashlib.sha1(der).digest()


def test_tls_is_layered_on_open_stream(ca: trustme.CA, cert: trustme.LeafCert) -> None:
    async def main(nursery: trio.Nursery) -> None:
        net = FakeNet(nursery, server_tls=server_context(cert))
        http = TrioHttp(trusting_context(ca), open_stream=net.open_stream)
        first = await http(HttpRequest("GET", "https://example.test/x"))
        second = await http(HttpRequest("GET", "https://example.test/y"))
        await http.aclose()
        assert (first.body, second.body) == (b"ok:/x", b"ok:/y")
        assert net.opened == [("example.test", 443)]
        assert [request.target for request, _ in net.seen] == [b"/x", b"/y"]

    run_fake(main)


class TlsServer:
    """A TLS + h11 server on 127.0.0.1 that records SNI names, requests and raw request bytes."""

    def __init__(self, context: ssl.SSLContext) -> None:
        context.sni_callback = self._record_sni
        self.context = context
        self.port = 0
        self.sni: list[str | None] = []
        self.conns: list[ServerConn] = []
        self.seen: list[tuple[h11.Request, bytes]] = []
        self.finished = 0
        self.changed = trio.Event()

    def _record_sni(self, tls: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        self.sni.append(name)

    async def start(self, nursery: trio.Nursery) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        tls_listeners = [
            trio.SSLListener(listener, self.context, https_compatible=True) for listener in listeners
        ]
        await nursery.start(trio.serve_listeners, self._handle, tls_listeners)

    async def _handle(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        conn = ServerConn(stream)
        self.conns.append(conn)
        try:
            await stream.do_handshake()
        except trio.BrokenResourceError:
            await trio.aclose_forcefully(stream)  # the client refused our certificate
        else:
            await serve(conn, ok, self.seen)
        self.finished += 1
        self.changed.set()

    async def wait_finished(self, count: int) -> None:
        while self.finished < count:
            self.changed = trio.Event()
            await self.changed.wait()


def run_tls(cert: trustme.LeafCert, test: Callable[[TlsServer], Awaitable[None]]) -> None:
    async def main() -> None:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                server = TlsServer(server_context(cert))
                await server.start(nursery)
                await test(server)
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_tls_with_trusting_context(ca: trustme.CA, cert: trustme.LeafCert) -> None:
    async def main(server: TlsServer) -> None:
        http = TrioHttp(trusting_context(ca))
        request = HttpRequest("GET", f"https://127.0.0.1:{server.port}/a", tls_server_name="example.test")
        first = await http(request)
        second = await http(request)
        await http.aclose()
        assert (first.status, first.body, second.body) == (200, b"ok:/a", b"ok:/a")
        assert len(server.conns) == 1  # reused over TLS too
        assert server.seen[0][0].headers.raw_items()[0] == (b"Host", f"127.0.0.1:{server.port}".encode())

    run_tls(cert, main)


def test_tls_server_name_sets_sni_and_checked_name(ca: trustme.CA, cert: trustme.LeafCert) -> None:
    async def main(server: TlsServer) -> None:
        http = TrioHttp(trusting_context(ca))
        url = f"https://127.0.0.1:{server.port}/"
        await http(HttpRequest("GET", url, tls_server_name="example.test"))
        # Without it the certificate (for example.test only) does not match 127.0.0.1.
        error = await failure(http, HttpRequest("GET", url))
        await http.aclose()
        assert error.kind == "tls"
        assert isinstance(error.__cause__, trio.BrokenResourceError)
        assert isinstance(error.__cause__.__cause__, ssl.SSLCertVerificationError)
        assert server.sni == ["example.test", None]

    run_tls(cert, main)


def test_default_context_does_not_trust_an_unknown_ca(cert: trustme.LeafCert) -> None:
    async def main(server: TlsServer) -> None:
        http = TrioHttp()
        url = f"https://127.0.0.1:{server.port}/"
        error = await failure(http, HttpRequest("GET", url, tls_server_name="example.test"))
        await http.aclose()
        assert error.kind == "tls"
        assert error.detail == f"127.0.0.1:{server.port}: TLS handshake failed"
        await server.wait_finished(1)
        assert server.seen == []

    run_tls(cert, main)


def test_ca_pem_replaces_the_trust_store_and_is_its_own_origin(
    ca: trustme.CA, cert: trustme.LeafCert
) -> None:
    async def main(server: TlsServer) -> None:
        http = TrioHttp()
        url = f"https://127.0.0.1:{server.port}/"
        pem = ca.cert_pem.bytes()
        await http(HttpRequest("GET", url, tls_server_name="example.test", ca_pem=pem))
        await http(HttpRequest("GET", url, tls_server_name="example.test", ca_pem=pem))
        assert len(server.conns) == 1
        # Same host and port with different TLS settings must not share that connection.
        await http(HttpRequest("GET", url, pin_sha1=leaf_sha1(cert)))
        await http.aclose()
        assert len(server.conns) == 2
        assert len(server.seen) == 3

    run_tls(cert, main)


def test_invalid_ca_pem_is_tls(cert: trustme.LeafCert) -> None:
    async def main(server: TlsServer) -> None:
        http = TrioHttp()
        request = HttpRequest("GET", f"https://127.0.0.1:{server.port}/", ca_pem=b"not a certificate")
        error = await failure(http, request)
        assert error.kind == "tls"

    run_tls(cert, main)


def test_right_pin_skips_ca_and_hostname_checks(cert: trustme.LeafCert) -> None:
    async def main(server: TlsServer) -> None:
        http = TrioHttp()  # does not trust the trustme CA, and 127.0.0.1 is not in the certificate
        response = await http(
            HttpRequest("GET", f"https://127.0.0.1:{server.port}/p", pin_sha1=leaf_sha1(cert))
        )
        await http.aclose()
        assert response.body == b"ok:/p"

    run_tls(cert, main)


def test_wrong_pin_sends_nothing(ca: trustme.CA, cert: trustme.LeafCert) -> None:
    async def main(server: TlsServer) -> None:
        http = TrioHttp(trusting_context(ca))
        wrong = bytes(b ^ 1 for b in leaf_sha1(cert))
        request = HttpRequest("GET", f"https://127.0.0.1:{server.port}/", pin_sha1=wrong, body=b"secret")
        error = await failure(http, request)
        await http.aclose()
        assert error.kind == "pin_mismatch"
        await server.wait_finished(1)
        assert server.conns[0].raw == b""
        assert server.seen == []

    run_tls(cert, main)


def test_refused_loopback_port_is_connect() -> None:
    async def main() -> None:
        sock = trio.socket.socket()
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()  # nothing listens there now
        error = await failure(TrioHttp(), HttpRequest("GET", f"http://127.0.0.1:{port}/", timeout=2.0))
        assert (error.kind, error.detail) == ("connect", f"127.0.0.1:{port}: could not connect")

    trio.run(main)


def test_a_body_that_contradicts_its_content_length_is_not_sent() -> None:
    async def main(nursery: trio.Nursery) -> None:
        net = FakeNet(nursery)
        http = TrioHttp(open_stream=net.open_stream)
        request = HttpRequest("POST", "http://h.test/", headers=(("Content-Length", "5"),), body=b"abc")
        error = await failure(http, request)
        await http.aclose()
        assert (error.kind, error.detail) == ("connect", "h.test:80: request framing is invalid")
        assert net.seen == []

    run_fake(main)


def test_a_protocol_switch_is_not_a_response() -> None:
    async def switch(conn: ServerConn, request: h11.Request, body: bytes) -> None:
        await conn.send(h11.InformationalResponse(status_code=101, headers=[(b"Upgrade", b"websocket")]))
        await trio.sleep_forever()

    async def main(nursery: trio.Nursery) -> None:
        http = TrioHttp(open_stream=FakeNet(nursery, switch).open_stream)
        error = await failure(http, HttpRequest("GET", "http://h.test/", headers=(("Upgrade", "websocket"),)))
        await http.aclose()
        assert error.kind == "closed"

    run_fake(main)


def test_pin_and_ca_contexts_are_built_once(ca: trustme.CA, cert: trustme.LeafCert) -> None:
    async def main(server: TlsServer) -> None:
        http = TrioHttp()
        url = f"https://127.0.0.1:{server.port}/"
        pem = ca.cert_pem.bytes()
        for _ in range(2):  # aclose drops the pooled connections: each round connects anew
            await http(HttpRequest("GET", url, tls_server_name="example.test", ca_pem=pem))
            await http(HttpRequest("GET", url, pin_sha1=leaf_sha1(cert)))
            await http.aclose()
        assert len(server.conns) == 4
        assert len(http._ca_contexts) == 1
        assert http._pin_context is not None

    run_tls(cert, main)
