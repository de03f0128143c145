"""HttpRuntime against model servers that someone else already started (`--model-url`)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from batchform.errors import (
    ModelConnectionError,
    ModelError,
    ModelTimeoutError,
    RuntimeStartError,
)
from batchform.runtimes.base import InvocationRequest
from batchform.runtimes.http import HttpRuntime, parse_execution_parameters
from batchform.runtimes.workspace import free_port

ECHO_SERVE = Path(__file__).resolve().parent.parent / "models" / "echo" / "serve"


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    """The echo model, started by hand as a user would before pointing batchform at it."""
    port = free_port()
    env = {
        **os.environ,
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "ECHO_FAIL_MARKER": "BAD",
        "ECHO_SLEEP_MARKER": "SLOW",
        "ECHO_SLEEP_SECONDS": "3",
        "ECHO_EXECUTION_PARAMETERS": '{"BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 1}',
    }
    process = subprocess.Popen(
        [sys.executable, str(ECHO_SERVE)], env=env, stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    probe = HttpRuntime(url)
    deadline = time.monotonic() + 20
    while not probe.ping() and time.monotonic() < deadline:
        time.sleep(0.05)
    probe.stop()
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture
def echo(echo_url: str) -> Iterator[HttpRuntime]:
    runtime = HttpRuntime(echo_url, concurrency=2)
    with runtime:
        yield runtime


class Scripted(BaseHTTPRequestHandler):
    """Answers that the echo model does not give: huge errors, garbage, a crowd count."""

    protocol_version = "HTTP/1.1"
    in_flight = 0
    most_in_flight = 0
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/ping":
            self.reply(200, b"")
        else:
            self.reply(200, b"not json")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/prefix/invocations":
            self.reply(200, b"under a prefix")
        elif self.headers.get("Accept") == "huge-error":
            self.reply(503, b"\xff" + b"x" * 5000)
        else:
            self.count_crowd()
            self.reply(200, b"ok")

    def count_crowd(self) -> None:
        with self.lock:
            Scripted.in_flight += 1
            Scripted.most_in_flight = max(Scripted.most_in_flight, Scripted.in_flight)
        time.sleep(0.2)
        with self.lock:
            Scripted.in_flight -= 1


@pytest.fixture
def scripted_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    Scripted.most_in_flight = 0
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def request(payload: bytes, timeout: float = 10.0, accept: str = "text/csv") -> InvocationRequest:
    return InvocationRequest(payload, "text/csv", accept, timeout)


def test_invoke_echoes_over_a_reused_connection(echo: HttpRuntime) -> None:
    first = echo.invoke(request(b"1,2\n", accept="application/json"))
    second = echo.invoke(request(b"3,4\n"))

    assert (first.body, first.content_type) == (b"1,2\n", "application/json")
    assert second.body == b"3,4\n"
    assert echo.ping()


def test_execution_parameters_from_a_running_server(echo: HttpRuntime) -> None:
    parameters = echo.execution_parameters()

    assert parameters.batch_strategy == "SingleRecord"
    assert parameters.max_payload_in_mb == 1
    assert parameters.max_concurrent_transforms is None


def test_error_status_becomes_model_error(echo: HttpRuntime) -> None:
    with pytest.raises(ModelError) as caught:
        echo.invoke(request(b"BAD"))

    assert caught.value.status == 500
    assert caught.value.retriable
    assert "fail marker" in str(caught.value)


def test_slow_answer_becomes_timeout(echo: HttpRuntime) -> None:
    started = time.monotonic()

    with pytest.raises(ModelTimeoutError) as caught:
        echo.invoke(request(b"SLOW", timeout=0.3))

    assert caught.value.seconds == 0.3
    assert time.monotonic() - started < 2.0
    assert echo.invoke(request(b"still there")).body == b"still there"


def test_nobody_listening_is_a_connection_error() -> None:
    runtime = HttpRuntime(f"http://127.0.0.1:{free_port()}")

    with pytest.raises(ModelConnectionError, match="could not be reached"):
        runtime.invoke(request(b"x"))
    assert runtime.execution_parameters().batch_strategy is None
    with pytest.raises(RuntimeStartError, match="did not answer GET /ping"):
        runtime.start()


def test_connection_dropped_mid_request_is_a_connection_error() -> None:
    port = free_port()
    env = {**os.environ, "SAGEMAKER_BIND_TO_PORT": str(port), "ECHO_CRASH_MARKER": "BOOM"}
    process = subprocess.Popen([sys.executable, str(ECHO_SERVE)], env=env, stderr=subprocess.PIPE)
    runtime = HttpRuntime(f"http://127.0.0.1:{port}")
    try:
        while not runtime.ping():
            time.sleep(0.05)
        with pytest.raises(ModelConnectionError) as caught:
            runtime.invoke(request(b"BOOM"))
        assert caught.value.__cause__ is not None  # the urllib3 error is kept for debugging
    finally:
        runtime.stop()
        process.kill()
        process.communicate()


def test_error_body_is_cut_to_one_kibibyte_and_decoded(scripted_url: str) -> None:
    runtime = HttpRuntime(scripted_url)

    with pytest.raises(ModelError) as caught:
        runtime.invoke(request(b"x", accept="huge-error"))

    assert caught.value.status == 503
    assert caught.value.message == "\ufffd" + "x" * 1023


def test_garbage_execution_parameters_mean_no_opinion(scripted_url: str) -> None:
    parameters = HttpRuntime(scripted_url).execution_parameters()

    assert parameters.batch_strategy is None and parameters.max_payload_in_mb is None


def test_base_url_path_prefix_is_kept(scripted_url: str) -> None:
    runtime = HttpRuntime(scripted_url + "/prefix/")

    assert runtime.invoke(request(b"x")).body == b"under a prefix"


def test_concurrency_bounds_requests_in_flight(scripted_url: str) -> None:
    runtime = HttpRuntime(scripted_url, concurrency=2)
    threads = [threading.Thread(target=runtime.invoke, args=(request(b"x"),)) for _ in range(6)]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert Scripted.most_in_flight == 2


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"BatchStrategy": "MULTI_RECORD"}, (None, "MultiRecord", None)),
        ({"BatchStrategy": "MultiRecord"}, (None, "MultiRecord", None)),
        ({"BatchStrategy": "SINGLE_RECORD"}, (None, "SingleRecord", None)),
        ({"BatchStrategy": "SingleRecord"}, (None, "SingleRecord", None)),
        ({"MaxConcurrentTransforms": 8, "MaxPayloadInMB": 0}, (8, None, 0)),
        ({"MaxConcurrentTransforms": 0, "BatchStrategy": "Bulk"}, (None, None, None)),
        ({"MaxConcurrentTransforms": True, "MaxPayloadInMB": "6"}, (None, None, None)),
        (["not", "an", "object"], (None, None, None)),
    ],
)
def test_execution_parameters_parsing(document: object, expected: tuple[object, ...]) -> None:
    parameters = parse_execution_parameters(document)

    assert (
        parameters.max_concurrent_transforms,
        parameters.batch_strategy,
        parameters.max_payload_in_mb,
    ) == expected
