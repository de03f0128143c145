"""A real S3-compatible server on loopback: moto's server, in its own process.

A separate process (not moto's in-process mock) so that everything talks to it the way
it talks to S3: over HTTP, from this process or from any subprocess a test starts.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_START_TIMEOUT_SECONDS = 30.0


@contextmanager
def moto_server() -> Iterator[str]:
    """Run `python -m moto.server` on a free loopback port; yield its endpoint URL."""
    with tempfile.TemporaryDirectory(prefix="batchform-moto-") as folder:
        log_path = Path(folder) / "moto.log"
        port = _free_port()
        with log_path.open("wb") as log:
            # The log goes to a file, not a pipe: moto logs every request, and an unread
            # pipe would fill up and stall the server.
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        endpoint = f"http://127.0.0.1:{port}"
        try:
            _wait_until_answering(endpoint, process, log_path)
            yield endpoint
        finally:
            _stop(process)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_answering(endpoint: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}:\n{_tail(log)}")
        if _answers(endpoint):
            return
        time.sleep(0.05)
    raise RuntimeError(f"moto server did not answer at {endpoint}:\n{_tail(log)}")


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means it is serving
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
