"""`batchform serve-handler`: a Python handler served over the SageMaker contract by
real worker processes on loopback, called as a user's tools would call it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import urllib3

from batchform.runtimes.base import InvocationRequest
from batchform.runtimes.http import HttpRuntime
from batchform.runtimes.workspace import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVING = ROOT / "tests" / "handlers" / "serving"
HANDLER_CONTAINER = ROOT / "tests" / "models" / "handler_container"
SERVE_HANDLER = [sys.executable, "-m", "batchform.cli", "serve-handler"]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    output: Path

    def workers(self) -> set[int]:
        return {child.pid for child in psutil.Process(self.process.pid).children()}

    def printed(self) -> str:
        return self.output.read_text(errors="replace")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(20)


def start_server(handler: Path, output: Path, *extra: str) -> Server:
    port = free_port()
    command = [*SERVE_HANDLER, str(handler)]
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--port", str(port), *extra], stdout=sink, stderr=subprocess.STDOUT
        )
    server = Server(process, f"http://127.0.0.1:{port}", output)
    probe = HttpRuntime(server.url)
    deadline = time.monotonic() + 60
    while not probe.ping(timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"serve-handler did not come up:\n{server.printed()}")
        time.sleep(0.05)
    probe.stop()
    return server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(SERVING, tmp_path / "server.log", "--workers", "2")
    yield running
    if running.process.poll() is None:
        running.stop()


def post(url: str, body: bytes, content_type: str = "text/csv") -> urllib3.BaseHTTPResponse:
    return urllib3.request(
        "POST",
        url + "/invocations",
        body=body,
        headers={"Content-Type": content_type, "Accept": "text/csv"},
        timeout=10.0,
        retries=False,
    )


def csv_request(payload: bytes) -> InvocationRequest:
    return InvocationRequest(payload, "text/csv", "text/csv", timeout_seconds=10.0)


def test_the_contract_is_answered(server: Server) -> None:
    ping = urllib3.request("GET", server.url + "/ping", timeout=5.0)
    parameters = urllib3.request("GET", server.url + "/execution-parameters", timeout=5.0)
    answer = post(server.url, b"a,b\nc,d\n")

    assert ping.status == 200
    assert json.loads(parameters.data) == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }
    assert (answer.status, answer.data) == (200, b"A,B\nC,D\n")
    assert answer.headers["Content-Type"] == "text/csv"


def test_two_workers_share_the_connections_of_one_client(server: Server) -> None:
    client = HttpRuntime(server.url, concurrency=4)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(client.invoke, [csv_request(b"pid")] * 8))
    client.stop()

    pids = {int(answer.body) for answer in answers}
    assert pids == server.workers()
    assert len(pids) == 2


def test_model_error_keeps_its_status_and_message(server: Server) -> None:
    answer = post(server.url, b"{}", content_type="application/json")

    assert answer.status == 415
    assert answer.data.startswith(b"application/json is not supported (inference.py, line")


def raw_exchange(url: str, *messages: bytes) -> bytes:
    """Send the messages in turn (a pause between them) and return all the server said."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        for message in messages:
            sock.sendall(message)
            time.sleep(0.2)
        sock.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: sock.recv(65536), b""))


def test_expect_100_continue_as_curl_sends_it(server: Server) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
    head += b"Expect: 100-continue\r\nContent-Length: 4\r\n\r\n"

    said = raw_exchange(server.url, head, b"a,b\n")

    assert said.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert said.endswith(b"\r\n\r\nA,B\n")


def test_chunked_request_body(server: Server) -> None:
    client = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=10)
    client.request(
        "POST",
        "/invocations",
        body=iter([b"a,", b"b\n"]),
        headers={"Content-Type": "text/csv"},
        encode_chunked=True,
    )
    response = client.getresponse()

    assert (response.status, response.read()) == (200, b"A,B\n")
    client.close()


def test_http_1_0_client_gets_its_answer_and_a_close(server: Server) -> None:
    said = raw_exchange(server.url, b"GET /ping HTTP/1.0\r\n\r\n")

    assert said.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in said


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", b"404 Not Found"),
        (b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"405 Method"),
        (b"GET /invocations HTTP/1.1\r\nHost: x\r\n\r\n", b"405 Method"),
        (b"HELLO\r\n\r\n", b"400 Bad Request"),
        (b"POST /invocations HTTP/1.1\r\nContent-Length: x\r\n\r\n", b"400 Bad Request"),
    ],
)
def test_requests_outside_the_contract(server: Server, request_bytes: bytes, status: bytes) -> None:
    said = raw_exchange(server.url, request_bytes)

    assert said.startswith(b"HTTP/1.1 " + status)


def test_a_worker_that_dies_is_replaced(server: Server) -> None:
    before = server.workers()
    with pytest.raises(urllib3.exceptions.ProtocolError):
        post(server.url, b"exit")

    deadline = time.monotonic() + 30
    while len(server.workers() - before) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    after = server.workers()
    assert len(after) == 2 and after != before
    assert post(server.url, b"x\n").data == b"X\n"
    assert "exited with code 1; replacing it" in server.printed()


def test_workers_get_their_share_of_the_cores_for_native_threads(server: Server) -> None:
    share = str(max(1, (os.cpu_count() or 1) // 2))

    for pid in server.workers():
        environment = psutil.Process(pid).environ()
        assert environment.get("OPENBLAS_NUM_THREADS", share) == share
        assert environment.get("OMP_NUM_THREADS", share) == share


def test_workers_of_a_killed_server_exit_and_free_the_port(server: Server) -> None:
    workers = server.workers()

    server.process.kill()  # SIGKILL: no chance to stop its workers
    server.process.wait()

    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in workers)
    port = int(server.url.rsplit(":", 1)[1])
    socket.create_server(("127.0.0.1", port)).close()  # nobody holds it any more


def test_sigterm_lets_the_invocation_in_flight_finish(server: Server) -> None:
    workers = server.workers()
    answers: list[urllib3.BaseHTTPResponse] = []
    in_flight = threading.Thread(target=lambda: answers.append(post(server.url, b"pid")))
    in_flight.start()
    time.sleep(0.1)  # the handler now sleeps 0.3 s before answering

    assert server.stop() == 0
    in_flight.join(10)
    assert answers and answers[0].status == 200
    assert not any(psutil.pid_exists(pid) and _alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_handler_that_fails_to_load_stops_the_server(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "inference.py").write_text(
        "def model_fn(model_dir):\n    raise RuntimeError('weights are missing')\n"
    )
    result = subprocess.run(
        [*SERVE_HANDLER, str(tmp_path / "broken"), "--port", str(free_port()), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert "model_fn failed: RuntimeError: weights are missing" in result.stderr


# --- used by `batchform transform` -------------------------------------------------------


def batchform(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The container's `serve` script finds `batchform` on PATH, as a user's would.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", "batchform.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "BATCHFORM_HOME": str(home), "PATH": path, "COLUMNS": "200"},
        timeout=240,
        check=False,
    )


def write_inputs(root: Path) -> dict[str, bytes]:
    """Objects of several sizes; returns the expected outputs (upper-cased CSV)."""
    files = {
        "a.csv": b"".join(b"r%d,x%d\n" % (i, i) for i in range(30000)),
        "sub/b.csv": b"a,b\nc,d",
        "c.csv": b"".join(b"q%d\n" % i for i in range(5000)),
    }
    for key, data in files.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)
    return {
        f"{key}.out": data.upper() + (b"" if data.endswith(b"\n") else b"\n")
        for key, data in files.items()
    }


def read_outputs(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*.out")}


def transform_args(tmp_path: Path, *model: str) -> list[str]:
    return [
        "transform",
        *model,
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
        "--content-type",
        "text/csv",
        "--split-type",
        "Line",
        "--max-payload",
        "1",
        "--assemble-with",
        "Line",
    ]


@pytest.mark.parametrize("strategy", ["MultiRecord", "SingleRecord"])
def test_transform_through_model_url(server: Server, tmp_path: Path, strategy: str) -> None:
    expected = write_inputs(tmp_path / "in")
    if strategy == "SingleRecord":
        (tmp_path / "in" / "a.csv").unlink()  # 30,000 single requests are a benchmark's job
        del expected["a.csv.out"]
    model = ("--model-url", server.url)
    result = batchform(
        tmp_path / "home",
        *transform_args(tmp_path, *model),
        *("--strategy", strategy, "--concurrency", "4"),
    )

    assert result.returncode == 0, result.stderr
    assert read_outputs(tmp_path / "out") == expected


def test_transform_does_not_retry_a_415(server: Server, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "one.json").write_bytes(b'{"a": 1}\n')
    args = transform_args(tmp_path, "--model-url", server.url)
    args[args.index("text/csv")] = "application/json"

    result = batchform(tmp_path / "home", *args, "--max-retries", "3")

    assert result.returncode == 1
    assert "model returned HTTP status 415: application/json is not supported" in result.stderr
    assert server.printed().count("invocation as application/json") == 1
    assert read_outputs(tmp_path / "out") == {}


def test_container_whose_serve_runs_serve_handler(tmp_path: Path) -> None:
    expected = write_inputs(tmp_path / "in")
    model = ("--model", str(HANDLER_CONTAINER))
    result = batchform(tmp_path / "home", *transform_args(tmp_path, *model), "--concurrency", "2")

    assert result.returncode == 0, result.stderr
    assert read_outputs(tmp_path / "out") == expected
    (job,) = (tmp_path / "home" / "jobs").iterdir()
    log = (job / "log").read_text()
    assert log.count("handler container: model loaded in worker") == 2
    assert "serve-handler: serving" in log and "with 2 worker(s)" in log
