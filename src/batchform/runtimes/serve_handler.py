"""`batchform serve-handler`: a Python handler behind SageMaker's serving contract.

So that any tool speaking the contract (batchform's `--model-url`, a SageMaker local
mode, curl) can call an `inference.py`, and so that the HTTP path can be measured
against the in-process one.

Pre-fork, as gunicorn and the SageMaker model servers are: the parent binds the port
and forks `workers` processes before loading anything; each worker loads the handler
once, then accepts connections on the shared socket and answers one invocation at a
time (LoadedHandler is not meant for concurrent calls, and a CPU-bound model gains
nothing from two at once in one process). Connections are kept alive, so they stay
with the worker that accepted them; `_Balance` makes a worker take a new connection
only while it holds no more than any other, or two of the engine's connections could
share one worker while another idles for the whole job.

SIGTERM or SIGINT to the parent stops every worker after its invocation in flight; a
worker that dies is replaced.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import select
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from batchform.errors import RuntimeStartError
from batchform.runtimes.contract_server import ContractModel, serve_connection
from batchform.runtimes.handler_module import (
    PROGRAM_ENV,
    HandlerSource,
    find_handler,
    load_handler,
)
from batchform.runtimes.modeldata import extract_model_data

DEFAULT_PORT = 8080  # what SageMaker binds when SAGEMAKER_BIND_TO_PORT is not set
DEFAULT_STOP_GRACE = 30.0
# How often an idle worker looks up from select() to see whether it should stop.
_POLL_SECONDS = 0.1
_LISTEN_BACKLOG = 512
_TEXT = "text/plain; charset=utf-8"

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


def default_execution_parameters(workers: int) -> dict[str, object]:
    """One request in flight per worker, as SageMaker's own containers offer."""
    return {
        "MaxConcurrentTransforms": workers,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


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


# --- the parent -------------------------------------------------------------------------


class _StopServing(Exception):
    """Raised by the parent's SIGTERM/SIGINT handler to leave whatever it is waiting on."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _StopServing(signal.Signals(signum).name)


class _Supervisor:
    """Forks the workers, waits for them to load, replaces any that die, stops them all."""

    def __init__(
        self, listener: socket.socket, source: HandlerSource, options: ServeOptions, say: Say
    ) -> None:
        # fork: the workers inherit the bound socket, and nothing heavy is loaded yet.
        self._context = multiprocessing.get_context("fork")
        self._listener = listener
        self._source = source
        self._options = options
        self._say = say
        self._balance = _Balance(self._context.RawArray("i", options.workers))
        self._workers: dict[int, BaseProcess] = {}

    def run(self) -> None:
        handlers = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._start(range(self._options.workers))
            host, port = self._listener.getsockname()[:2]
            self._say(
                f"serving {self._source.code_path} on http://{host}:{port} with "
                f"{len(self._workers)} worker(s): "
                + ", ".join(str(worker.pid) for worker in self._workers.values())
            )
            self._watch()
        except _StopServing as stop:
            self._say(f"{stop}: stopping the workers")
        finally:
            # A second signal must not cut the clean-up short; stop() ends in SIGKILL anyway.
            for sig in handlers:
                signal.signal(sig, signal.SIG_IGN)
            self._stop()
            for sig, previous in handlers.items():
                signal.signal(sig, previous)

    def _start(self, slots: range | list[int]) -> None:
        """Fork one worker per slot, then wait until each has loaded the handler."""
        pipes = [(slot, self._fork(slot)) for slot in slots]
        for slot, ready in pipes:
            with ready:
                _await_ready(self._workers[slot], ready)

    def _fork(self, slot: int) -> Connection:
        ready, report = self._context.Pipe(duplex=False)
        setup = _WorkerSetup(
            slot, self._listener, self._source, self._balance, self._options, report, os.getpid()
        )
        self._balance.reset(slot)
        process = self._context.Process(
            target=_worker_main, args=(setup,), name=f"batchform-serve-handler-{slot}"
        )
        process.start()
        report.close()
        self._workers[slot] = process
        return ready

    def _watch(self) -> None:
        """Block until a worker exits (then replace it) or a signal says stop."""
        while True:
            by_sentinel = {worker.sentinel: slot for slot, worker in self._workers.items()}
            for sentinel in wait(list(by_sentinel)):
                assert isinstance(sentinel, int)  # wait() hands back what it was given
                slot = by_sentinel[sentinel]
                dead = self._workers[slot]
                dead.join()
                self._say(f"worker {dead.pid} exited with code {dead.exitcode}; replacing it")
                self._start([slot])

    def _stop(self) -> None:
        """SIGTERM every worker, SIGKILL what is left after the grace period."""
        workers = list(self._workers.values())
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + self._options.stop_grace
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                worker.kill()
                worker.join()


def _await_ready(worker: BaseProcess, ready: Connection) -> None:
    try:
        status, detail = ready.recv()
    except EOFError:
        worker.join()
        raise RuntimeStartError(
            f"handler worker exited with code {worker.exitcode} while loading"
        ) from None
    if status != "ready":
        worker.join()
        raise RuntimeStartError(str(detail))


# --- the workers ------------------------------------------------------------------------


class _Balance:
    """Open connections per worker, in shared memory that every worker reads.

    Each slot is written by its own worker (and reset by the parent when it replaces a
    dead one), so reads need no lock; a stale read only makes a worker wait a turn.
    """

    def __init__(self, counts: Any) -> None:
        self._counts = counts
        self._lock = threading.Lock()  # this process's connection threads

    def my_turn(self, slot: int) -> bool:
        counts = list(self._counts)
        return bool(counts[slot] <= min(counts))

    def opened(self, slot: int) -> None:
        with self._lock:
            self._counts[slot] += 1

    def closed(self, slot: int) -> None:
        with self._lock:
            self._counts[slot] -= 1

    def reset(self, slot: int) -> None:
        self._counts[slot] = 0


@dataclass
class _WorkerSetup:
    """What a forked worker inherits from the parent."""

    slot: int
    listener: socket.socket
    source: HandlerSource
    balance: _Balance
    options: ServeOptions
    report: Connection
    parent_pid: int


def _worker_main(setup: _WorkerSetup) -> None:
    """A worker process: load the handler once, then accept until told to stop."""
    stopping = threading.Event()
    # Ctrl-C reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    try:
        handler = load_handler(setup.source)
        parameters = handler.execution_parameters()
    except Exception as exc:  # whatever the user's module raised at import or model_fn
        setup.report.send(("error", f"handler failed to load: {exc}"))
        sys.exit(1)
    default = default_execution_parameters(setup.options.workers)
    model = ContractModel(handler, parameters or default)
    setup.report.send(("ready", os.getpid()))
    setup.report.close()
    _accept_until(stopping, setup, model)
    # Let the invocations in flight finish; idle keep-alive connections just close.
    model.in_flight.wait_until_idle(setup.options.stop_grace)


def _accept_until(stopping: threading.Event, setup: _WorkerSetup, model: ContractModel) -> None:
    # A parent killed with SIGKILL cannot stop us; noticing it keeps the port from
    # being held by orphans.
    while not stopping.is_set() and os.getppid() == setup.parent_pid:
        if not setup.balance.my_turn(setup.slot):
            stopping.wait(_POLL_SECONDS)
            continue
        readable, _, _ = select.select([setup.listener], [], [], _POLL_SECONDS)
        if readable:
            _accept_one(setup, model)


def _accept_one(setup: _WorkerSetup, model: ContractModel) -> None:
    try:
        connection, _ = setup.listener.accept()
    except (BlockingIOError, InterruptedError):
        return  # another worker took it
    except OSError as exc:  # out of file descriptors, say: keep serving the others
        print(f"serve-handler worker {os.getpid()}: accept failed: {exc}", file=sys.stderr)
        return
    connection.setblocking(True)
    # A large answer goes out in two writes; Nagle would hold the second one back.
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    setup.balance.opened(setup.slot)
    thread = threading.Thread(
        target=_serve_connection, args=(connection, setup, model), daemon=True
    )
    thread.start()


def _serve_connection(connection: socket.socket, setup: _WorkerSetup, model: ContractModel) -> None:
    try:
        serve_connection(connection, model)
    finally:
        connection.close()
        setup.balance.closed(setup.slot)
