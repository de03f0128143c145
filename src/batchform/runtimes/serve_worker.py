"""One `serve-handler` worker: load the handler once, then answer on the shared socket.

Started by serve_handler's supervisor as `python -m batchform.runtimes.serve_worker
SETUP` (JSON), with the listening socket, a status pipe and the balance file passed as
file descriptors. A fresh interpreter rather than a fork of the supervisor: the
environment it is given (native thread-pool limits above all) must be in place before
numpy loads, and the command line that started the supervisor has loaded it already.

The status pipe carries one line, `["ready"]` or `["error", message]`, and then stays
open: its end-of-file is how the supervisor learns that the worker exited.
"""

from __future__ import annotations

import json
import mmap
import os
import select
import signal
import socket
import sys
import threading
from dataclasses import asdict, dataclass
from typing import IO

from batchform.runtimes.contract_server import ContractModel, serve_connection
from batchform.runtimes.handler_module import HandlerSource, load_handler

# How often an idle worker looks up from select() to see whether it should stop.
_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class WorkerSetup:
    slot: int
    workers: int
    listen_fd: int
    status_fd: int
    balance_fd: int
    code_path: str
    model_dir: str
    parent_pid: int
    stop_grace: float

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSetup:
        return cls(**json.loads(text))


def default_execution_parameters(workers: int) -> dict[str, object]:
    """One request in flight per worker, as SageMaker's own containers offer."""
    return {
        "MaxConcurrentTransforms": workers,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


class Balance:
    """Open connections per worker, in a small file every worker maps.

    Keep-alive connections stay with the worker that accepted them, so a worker takes
    a new one only while it holds no more than any other; otherwise two of the engine's
    connections could share one worker while another idles for the whole job. Each
    slot is written by its own worker (and reset by the supervisor when it replaces a
    dead one), so reads need no lock; a stale read only makes a worker wait a turn.
    """

    def __init__(self, fd: int, workers: int) -> None:
        self._map = mmap.mmap(fd, 4 * workers)
        self._counts = memoryview(self._map).cast("i")
        self._lock = threading.Lock()  # this process's connection threads

    def my_turn(self, slot: int) -> bool:
        counts = self._counts.tolist()
        return bool(counts[slot] <= min(counts))

    def opened(self, slot: int) -> None:
        with self._lock:
            self._counts[slot] += 1

    def closed(self, slot: int) -> None:
        with self._lock:
            self._counts[slot] -= 1

    def reset(self, slot: int) -> None:
        self._counts[slot] = 0


def main() -> None:
    setup = WorkerSetup.from_json(sys.argv[1])
    stopping = threading.Event()
    # Ctrl-C reaches the whole process group; the supervisor decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    status = os.fdopen(setup.status_fd, "wb", buffering=0)
    model = _load(setup, status)
    listener = socket.socket(fileno=setup.listen_fd)
    _accept_until(stopping, setup, listener, Balance(setup.balance_fd, setup.workers), model)
    # Let the invocations in flight finish; idle keep-alive connections just close.
    model.in_flight.wait_until_idle(setup.stop_grace)


def _load(setup: WorkerSetup, status: IO[bytes]) -> ContractModel:
    source = HandlerSource(model_dir=setup.model_dir, code_path=setup.code_path)
    try:
        handler = load_handler(source)
        parameters = handler.execution_parameters()
    except Exception as exc:  # whatever the user's module raised at import or model_fn
        status.write(json.dumps(["error", f"handler failed to load: {exc}"]).encode() + b"\n")
        sys.exit(1)
    model = ContractModel(handler, parameters or default_execution_parameters(setup.workers))
    status.write(b'["ready"]\n')
    return model


def _accept_until(
    stopping: threading.Event,
    setup: WorkerSetup,
    listener: socket.socket,
    balance: Balance,
    model: ContractModel,
) -> None:
    # A supervisor killed with SIGKILL cannot stop us; noticing it keeps the port from
    # being held by orphans.
    while not stopping.is_set() and os.getppid() == setup.parent_pid:
        if not balance.my_turn(setup.slot):
            stopping.wait(_POLL_SECONDS)
            continue
        readable, _, _ = select.select([listener], [], [], _POLL_SECONDS)
        if readable:
            _accept_one(listener, setup.slot, balance, model)


def _accept_one(listener: socket.socket, slot: int, balance: Balance, model: ContractModel) -> None:
    try:
        connection, _ = listener.accept()
    except (BlockingIOError, InterruptedError):
        return  # another worker took it
    except OSError as exc:  # out of file descriptors, say: keep serving the others
        print(f"serve-handler worker {os.getpid()}: accept failed: {exc}", file=sys.stderr)
        return
    connection.setblocking(True)
    # A large answer goes out in two writes; Nagle would hold the second one back.
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    balance.opened(slot)
    thread = threading.Thread(
        target=_serve_connection, args=(connection, slot, balance, model), daemon=True
    )
    thread.start()


def _serve_connection(
    connection: socket.socket, slot: int, balance: Balance, model: ContractModel
) -> None:
    try:
        serve_connection(connection, model)
    finally:
        connection.close()
        balance.closed(slot)


if __name__ == "__main__":
    main()
