"""The contract's HTTP client against servers on loopback that answer byte for byte as
scripted: every framing HTTP/1.1 allows, and the ways connections go away."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from batchform.runtimes.httpclient import (
    ConnectionPool,
    HttpProtocolError,
    HttpTimeout,
)

Script = Callable[[socket.socket, bytes], bool]  # answer one request; False: close


class ScriptedServer:
    """Accepts connections and answers each request with `script`; counts connections."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        reader = connection.makefile("rb")
        # A client that gave up (a timeout test) leaves this side writing into nothing.
        with connection, contextlib.suppress(OSError):
            while head := _read_request_head(reader):
                length = _content_length(head)
                request = head + reader.read(length)
                self.requests.append(request)
                if not self.script(connection, request):
                    return

    def close(self) -> None:
        self._listener.close()


Serve = Callable[[Script], ScriptedServer]


def _read_request_head(reader: object) -> bytes:
    lines = []
    while True:
        line = reader.readline()  # type: ignore[attr-defined]
        if not line:
            return b""
        lines.append(line)
        if line == b"\r\n":
            return b"".join(lines)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return int(value)
    return 0


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def answer(raw: bytes, keep: bool = True) -> Script:
    def script(connection: socket.socket, request: bytes) -> bool:
        connection.sendall(raw)
        return keep

    return script


def test_content_length_keep_alive_reuses_one_connection(
    serve: Serve,
) -> None:
    server = serve(
        answer(b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 3\r\n\r\nabc")
    )
    pool = ConnectionPool(server.url)

    first = pool.request(
        "POST", "/invocations", body=b"1,2\n", headers={"Accept": "x/y"}, timeout=5
    )
    second = pool.request("POST", "/invocations", body=b"3\n", timeout=5)

    assert (first.status, first.body, first.headers["content-type"]) == (200, b"abc", "text/csv")
    assert second.body == b"abc"
    assert server.connections == 1
    assert server.requests[0].startswith(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nContent-Length: 4\r\nAccept: x/y\r\n\r\n1,2\n" in server.requests[0]


def test_chunked_answer_with_extensions_and_trailers(serve: Serve) -> None:
    body = b"4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Trailer: yes\r\n\r\n"
    server = serve(answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body))
    pool = ConnectionPool(server.url)

    assert pool.request("GET", "/ping", timeout=5).body == b"abcdefg"
    assert pool.request("GET", "/ping", timeout=5).body == b"abcdefg"
    assert server.connections == 1


def test_answer_ended_by_close_is_read_whole(serve: Serve) -> None:
    server = serve(answer(b"HTTP/1.0 200 OK\r\n\r\n" + b"z" * 300_000, keep=False))
    pool = ConnectionPool(server.url)

    assert pool.request("POST", "/invocations", body=b"x", timeout=5).body == b"z" * 300_000
    assert pool.request("POST", "/invocations", body=b"x", timeout=5).status == 200
    assert server.connections == 2


def test_interim_100_continue_is_skipped(serve: Serve) -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    server = serve(answer(raw))

    response = ConnectionPool(server.url).request("POST", "/invocations", body=b"x", timeout=5)

    assert (response.status, response.body) == (201, b"ok")


def test_connection_close_header_is_honoured(serve: Serve) -> None:
    raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n!"
    server = serve(answer(raw, keep=False))
    pool = ConnectionPool(server.url)

    for _ in range(3):
        assert pool.request("GET", "/ping", timeout=5).body == b"!"
    assert server.connections == 3


def test_idle_connection_closed_by_the_server_is_not_reused(
    serve: Serve,
) -> None:
    # The server forgets idle connections (as servers with a keep-alive timeout do),
    # without saying so in its answer.
    server = serve(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", keep=False))
    pool = ConnectionPool(server.url)
    pool.request("GET", "/ping", timeout=5)
    time.sleep(0.1)

    assert pool.request("POST", "/invocations", body=b"x", timeout=5).body == b"ok"
    assert server.connections == 2


def test_a_body_cut_short_is_a_protocol_error(serve: Serve) -> None:
    server = serve(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", keep=False))

    with pytest.raises(HttpProtocolError, match="7 bytes short of 10"):
        ConnectionPool(server.url).request("POST", "/invocations", body=b"x", timeout=5)


def test_no_answer_at_all_is_a_protocol_error(serve: Serve) -> None:
    server = serve(answer(b"", keep=False))

    with pytest.raises(HttpProtocolError, match="without a response"):
        ConnectionPool(server.url).request("POST", "/invocations", body=b"x", timeout=5)


def test_garbage_is_a_protocol_error(serve: Serve) -> None:
    server = serve(answer(b"SSH-2.0-OpenSSH\r\n\r\n", keep=False))

    with pytest.raises(HttpProtocolError, match=r"not an HTTP/1\.x status line"):
        ConnectionPool(server.url).request("GET", "/ping", timeout=5)


def test_an_answer_that_stops_midway_times_out(serve: Serve) -> None:
    def hang(connection: socket.socket, request: bytes) -> bool:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
        time.sleep(3)
        return False

    server = serve(hang)
    started = time.monotonic()

    with pytest.raises(HttpTimeout):
        ConnectionPool(server.url).request("POST", "/invocations", body=b"x", timeout=0.5)
    assert time.monotonic() - started < 1.5


def test_a_chunked_stream_is_cut_off_at_the_deadline(serve: Serve) -> None:
    def trickle(connection: socket.socket, request: bytes) -> bool:
        connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(100):
            connection.sendall(b"1\r\n.\r\n")
            time.sleep(0.05)
        return False

    server = serve(trickle)
    started = time.monotonic()

    with pytest.raises(HttpTimeout):
        ConnectionPool(server.url).request("POST", "/invocations", body=b"x", timeout=0.5)
    assert time.monotonic() - started < 1.5


def test_large_bodies_both_ways(serve: Serve) -> None:
    def echo(connection: socket.socket, request: bytes) -> bool:
        body = request.partition(b"\r\n\r\n")[2]
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        return True

    server = serve(echo)
    payload = bytes(range(256)) * 30_000  # 7.7 MB, past the one-write limit

    response = ConnectionPool(server.url).request("POST", "/invocations", body=payload, timeout=10)

    assert response.body == payload


def test_pool_bounds_connections_in_use(serve: Serve) -> None:
    def slow(connection: socket.socket, request: bytes) -> bool:
        time.sleep(0.1)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        return True

    server = serve(slow)
    pool = ConnectionPool(server.url, maxsize=2)
    threads = [
        threading.Thread(target=pool.request, args=("GET", "/ping"), kwargs={"timeout": 5})
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert server.connections == 2 and len(server.requests) == 6


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        ConnectionPool("ftp://example.com")
