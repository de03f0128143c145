"""`batchform serve-handler`: a Python handler behind SageMaker's serving contract.

So that any tool speaking the contract (batchform's `--model-url`, a SageMaker local
mode, curl) can call an `inference.py`, and so that the HTTP path can be measured
against the in-process one.

Pre-fork, as gunicorn and the SageMaker model servers are: the supervisor binds the
port and starts `workers` processes (serve_worker.py) that inherit the listening
socket; each loads the handler once, then accepts connections and answers one
invocation at a time (LoadedHandler is not meant for concurrent calls, and a CPU-bound
model gains nothing from two at once in one process). Each worker's native thread
pools get its share of the cores. Connections are kept alive, so they stay with the
worker that accepted them; serve_worker.Balance spreads them evenly.

SIGTERM or SIGINT to the supervisor stops every worker after its invocations in
flight; a worker that dies is replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from types import FrameType
from typing import IO

from batchform.errors import RuntimeStartError
from batchform.runtimes.handler_module import PROGRAM_ENV, HandlerSource, find_handler
from batchform.runtimes.modeldata import extract_model_data
from batchform.runtimes.serve_worker import Balance, WorkerSetup
from batchform.runtimes.workspace import worker_tuning

DEFAULT_PORT = 8080  # what SageMaker binds when SAGEMAKER_BIND_TO_PORT is not set
DEFAULT_STOP_GRACE = 30.0
_LISTEN_BACKLOG = 512

Say = Callable[[str], None]


@dataclass(frozen=True)
class ServeOptions:
    code_dir: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    workers: int = 1
    model_data_url: str | None = None
    program: str | None = None
    stop_grace: float = DEFAULT_STOP_GRACE


def default_port() -> int:
    """SAGEMAKER_BIND_TO_PORT, so a container's `serve` script needs no arguments."""
    configured = os.environ.get("SAGEMAKER_BIND_TO_PORT", "")
    return int(configured) if configured.isdigit() else DEFAULT_PORT


def default_workers() -> int:
    """SAGEMAKER_MODEL_SERVER_WORKERS (the inference toolkit's knob), else one per core."""
    configured = os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", "")
    return max(1, int(configured)) if configured.isdigit() else os.cpu_count() or 1


def serve(options: ServeOptions, say: Say) -> None:
    """Serve until SIGTERM or SIGINT; RuntimeStartError when the handler cannot load."""
    with _model_dir(options) as model_dir:
        program = options.program or os.environ.get(PROGRAM_ENV)
        found = find_handler(options.code_dir, program)
        source = HandlerSource(model_dir=model_dir, code_path=found.code_path)
        listener = _listen(options.host, options.port)
        try:
            _Supervisor(listener, source, options, say).run()
        finally:
            listener.close()


@contextlib.contextmanager
def _model_dir(options: ServeOptions) -> Iterator[str]:
    """What model_fn receives: --model-data unpacked, else the contract's SM_MODEL_DIR
    when the runtime put a model there, else the handler's own folder."""
    if options.model_data_url:
        with tempfile.TemporaryDirectory(prefix="batchform-serve-") as scratch:
            extract_model_data(options.model_data_url, scratch)
            yield scratch
        return
    contract_dir = os.environ.get("SM_MODEL_DIR", "")
    if contract_dir and os.path.isdir(contract_dir) and os.listdir(contract_dir):
        yield contract_dir
    else:
        yield os.path.abspath(options.code_dir)


def _listen(host: str, port: int) -> socket.socket:
    try:
        listener = socket.create_server((host, port), backlog=_LISTEN_BACKLOG)
    except OSError as exc:
        raise RuntimeStartError(f"cannot listen on {host}:{port}: {exc}") from exc
    # Every worker waits on this socket; the one that loses a race for a connection
    # must get EAGAIN, not block in accept() where it cannot notice a stop.
    listener.setblocking(False)
    return listener


# --- the supervisor ---------------------------------------------------------------------


class _StopServing(Exception):
    """Raised by the supervisor's SIGTERM/SIGINT handler to leave whatever it waits on."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _StopServing(signal.Signals(signum).name)


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    status: IO[bytes]  # the worker's status pipe: one line, then end-of-file at exit


class _Supervisor:
    """Starts the workers, waits for them to load, replaces any that die, stops them all."""

    def __init__(
        self, listener: socket.socket, source: HandlerSource, options: ServeOptions, say: Say
    ) -> None:
        self._listener = listener
        self._source = source
        self._options = options
        self._say = say
        # The connection counts every worker reads (serve_worker.Balance), in a file;
        # it lives as long as the supervisor, hence no `with`.
        self._balance_file = tempfile.TemporaryFile()  # noqa: SIM115
        os.ftruncate(self._balance_file.fileno(), 4 * options.workers)
        self._balance = Balance(self._balance_file.fileno(), options.workers)
        self._environment = {**os.environ, **worker_tuning(options.workers)}
        self._workers: dict[int, _Worker] = {}

    def run(self) -> None:
        handlers = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._start(list(range(self._options.workers)))
            self._say(self._serving_line())
            self._watch()
        except _StopServing as stop:
            self._say(f"{stop}: stopping the workers")
        finally:
            # A second signal must not cut the clean-up short; _stop ends in SIGKILL anyway.
            for sig in handlers:
                signal.signal(sig, signal.SIG_IGN)
            self._stop()
            self._balance_file.close()
            for sig, previous in handlers.items():
                signal.signal(sig, previous)

    def _serving_line(self) -> str:
        host, port = self._listener.getsockname()[:2]
        pids = ", ".join(str(worker.process.pid) for worker in self._workers.values())
        return (
            f"serving {self._source.code_path} on http://{host}:{port} with "
            f"{len(self._workers)} worker(s): {pids}"
        )

    def _start(self, slots: list[int]) -> None:
        """Start one worker per slot, then wait until each has loaded the handler."""
        for slot in slots:
            self._workers[slot] = self._spawn(slot)
        for slot in slots:
            _await_ready(self._workers[slot])

    def _spawn(self, slot: int) -> _Worker:
        status_read, status_write = os.pipe()
        setup = WorkerSetup(
            slot=slot,
            workers=self._options.workers,
            listen_fd=self._listener.fileno(),
            status_fd=status_write,
            balance_fd=self._balance_file.fileno(),
            code_path=self._source.code_path,
            model_dir=self._source.model_dir,
            parent_pid=os.getpid(),
            stop_grace=self._options.stop_grace,
        )
        self._balance.reset(slot)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "batchform.runtimes.serve_worker", setup.to_json()],
                pass_fds=(setup.listen_fd, setup.status_fd, setup.balance_fd),
                env=self._environment,
            )
        finally:
            os.close(status_write)  # the worker holds the only write end now
        return _Worker(process, os.fdopen(status_read, "rb"))

    def _watch(self) -> None:
        """Block until a worker exits (then replace it) or a signal says stop."""
        while True:
            by_pipe = {worker.status.fileno(): slot for slot, worker in self._workers.items()}
            for ended in wait(list(by_pipe)):
                assert isinstance(ended, int)  # wait() hands back what it was given
                slot = by_pipe[ended]
                dead = self._workers[slot]
                code = dead.process.wait()
                dead.status.close()
                self._say(f"worker {dead.process.pid} exited with code {code}; replacing it")
                self._start([slot])

    def _stop(self) -> None:
        """SIGTERM every worker, SIGKILL what is left after the grace period."""
        workers = list(self._workers.values())
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.terminate()
        deadline = time.monotonic() + self._options.stop_grace
        for worker in workers:
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            worker.status.close()


def _await_ready(worker: _Worker) -> None:
    line = worker.status.readline()
    if not line:
        code = worker.process.wait()
        raise RuntimeStartError(f"handler worker exited with code {code} while loading")
    status = json.loads(line)
    if status[0] != "ready":
        worker.process.wait()
        raise RuntimeStartError(str(status[1]))
