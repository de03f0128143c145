"""Start `batchform server` as a real process on loopback, and stop it, for the tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

STARTUP_SECONDS = 30.0


@dataclass
class Server:
    url: str
    home: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(self, service: str = "sagemaker", **settings: Any) -> Any:
        """A boto3 client with client-side validation off, so the server's own is tested."""
        import boto3
        from botocore.config import Config

        config = Config(parameter_validation=False, retries={"max_attempts": 1})
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=settings.get("key", "testing"),
            aws_secret_access_key=settings.get("secret", "testing"),
            config=config,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(home: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    log_path = home / f"server-{port}.log"
    home.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "batchform.cli", "server", "--port", str(port), *args]
    environment = {**os.environ, "BATCHFORM_HOME": str(home), **(env or {})}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", home, process, log_path)
    _wait_healthy(server)
    return server


def stop_server(server: Server, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
    """Signal the server; SIGKILL takes its whole process group down, as a crash would."""
    descendants = _descendants(server.process.pid)
    if server.process.poll() is None:
        if sig == signal.SIGKILL:
            for process in [psutil.Process(server.process.pid), *descendants]:
                with contextlib.suppress(psutil.Error):
                    process.kill()
        else:
            server.process.send_signal(sig)
    try:
        return server.process.wait(timeout)
    finally:
        for process in descendants:
            with contextlib.suppress(psutil.Error):
                process.kill()


@contextmanager
def running_server(home: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    server = start_server(home, *args, env=env)
    try:
        yield server
    finally:
        stop_server(server)


def _wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited ({server.process.returncode}):\n{server.log()}")
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    stop_server(server, signal.SIGKILL)
    raise RuntimeError(f"server did not become healthy:\n{server.log()}")


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []
