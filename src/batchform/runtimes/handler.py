"""The Python handler runtime: an `inference.py` served by a pool of worker processes.

Each worker process loads the handler (and calls model_fn) once, then answers payloads
sent over a pipe: no HTTP, no serialisation beyond raw bytes, and one process per core
so CPU-bound models use the whole machine.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import astuple, dataclass
from multiprocessing.connection import Connection

from batchform.errors import (
    InvocationError,
    ModelConnectionError,
    ModelError,
    ModelTimeoutError,
    RuntimeStartError,
)
from batchform.runtimes.base import (
    ExecutionParameters,
    InvocationRequest,
    InvocationResponse,
    Isolated,
    IsolationPlan,
    Runtime,
    RuntimeContext,
)
from batchform.runtimes.handler_source import HandlerSource
from batchform.runtimes.spool import SPOOL_MIN_BYTES, SpooledBody, receive_fd, send_fd, spool
from batchform.runtimes.workspace import worker_tuning

#: How long a worker may take to import the handler and run model_fn.
DEFAULT_STARTUP_TIMEOUT = 600.0
#: How long stopping waits, for all workers together, before killing the busy ones.
STOP_GRACE_SECONDS = 2.0


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    #: The same socket as `conn` (a duplicate descriptor), for receiving spooled answers.
    sock: socket.socket


class HandlerRuntime(Runtime):
    """A pool of `workers` processes, each with the handler loaded once."""

    def __init__(
        self,
        source: HandlerSource,
        context: RuntimeContext,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    ) -> None:
        self._source = source
        self._context = context
        self._startup_timeout = startup_timeout
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._stopped = False
        self.restarts = 0

    @property
    def workers(self) -> int:
        return max(1, self._context.workers)

    def start(self) -> None:
        starting = [self._spawn() for _ in range(self.workers)]
        try:
            for worker in starting:
                self._await_ready(worker)
        except BaseException:
            self.stop()
            raise
        for worker in starting:
            self._idle.put(worker)
        self._context.log(
            f"{self._context.instance_name}: handler {self._source.code_path} "
            f"loaded in {self.workers} worker process(es)"
        )

    def execution_parameters(self) -> ExecutionParameters:
        # Like SageMaker's own containers, offer one request in flight per worker.
        return ExecutionParameters(
            max_concurrent_transforms=self.workers,
            batch_strategy="MultiRecord",
            max_payload_in_mb=6,
        )

    def invoke(self, request: InvocationRequest) -> InvocationResponse:
        worker = self._idle.get()
        healthy = False
        try:
            response = self._exchange(worker, request)
            healthy = True
            return response
        except ModelError:
            healthy = True
            raise
        finally:
            self._idle.put(worker if healthy else self._replace(worker))

    def invoke_many(
        self, requests: list[InvocationRequest]
    ) -> list[InvocationResponse | InvocationError]:
        """A round of independent payloads answered in one exchange with one worker."""
        kinds = {(request.content_type, request.accept) for request in requests}
        if len(requests) < 2 or len(kinds) > 1:
            return super().invoke_many(requests)
        worker = self._idle.get()
        answers: list[InvocationResponse | InvocationError] = []
        healthy = False
        try:
            self._exchange_many(worker, requests, answers)
            healthy = True
        except InvocationError as exc:  # timed out or died: the unanswered ones fail with it
            answers.extend([exc] * (len(requests) - len(answers)))
        finally:
            self._idle.put(worker if healthy else self._replace(worker))
        return answers

    def isolate(self, request: InvocationRequest, plan: IsolationPlan) -> Isolated | None:
        """The worker group-tests the payload itself: one exchange, not one per test."""
        worker = self._idle.get()
        healthy = False
        try:
            isolated = self._exchange_isolating(worker, request, plan)
            healthy = True
            return isolated
        finally:
            self._idle.put(worker if healthy else self._replace(worker))

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            workers, self._all = self._all, []
        for worker in workers:
            _close_quietly(worker)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for worker in workers:
            _reap(worker, grace=max(0.0, deadline - time.monotonic()))

    def _spawn(self) -> _Worker:
        parent, child = socket.socketpair()
        command = [
            sys.executable,
            "-m",
            "batchform.runtimes.handler_worker",
            str(child.fileno()),
            self._source.code_path,
            self._source.model_dir,
        ]
        environment = {
            **os.environ,
            **worker_tuning(self.workers, self._context.cpus),
            **self._context.environment,
        }
        try:
            # A process group of its own: a terminal's Ctrl-C goes to batchform, which
            # decides when workers stop; workers exit when their socket closes.
            process = subprocess.Popen(
                command,
                pass_fds=[child.fileno()],
                env=environment,
                process_group=0,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        finally:
            child.close()
        threading.Thread(
            target=self._forward_output,
            args=(process,),
            daemon=True,
            name=f"{self._context.instance_name}-handler-log",
        ).start()
        sock = socket.socket(fileno=os.dup(parent.fileno()))
        worker = _Worker(process, Connection(parent.detach()), sock)
        with self._lock:
            self._all.append(worker)
        return worker

    def _forward_output(self, process: subprocess.Popen[bytes]) -> None:
        """What the handler prints goes to the job log, line by line, named by instance."""
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self._context.log(f"{self._context.instance_name}: {line}")

    def _await_ready(self, worker: _Worker) -> None:
        if not worker.conn.poll(self._startup_timeout):
            raise RuntimeStartError(
                f"handler {self._source.code_path} did not load within {self._startup_timeout:g} s"
            )
        try:
            status, detail = worker.conn.recv()
        except EOFError as exc:
            code = _exit_code(worker)
            raise RuntimeStartError(
                f"handler worker exited with code {code} while loading {self._source.code_path}"
            ) from exc
        if status != "ready":
            raise RuntimeStartError(f"handler {self._source.code_path} failed to load: {detail}")

    def _exchange(self, worker: _Worker, request: InvocationRequest) -> InvocationResponse:
        try:
            _send_payload(worker, request)
            if not worker.conn.poll(request.timeout_seconds):
                raise ModelTimeoutError(request.timeout_seconds)
            reply = worker.conn.recv()
            if reply[0] == "error":
                raise ModelError(reply[1], reply[2])
            if reply[0] == "spooled":
                _, content_type, size, checksum, ends_with_newline = reply
                fd = receive_fd(worker.sock)
                spooled = SpooledBody(fd, size, checksum, ends_with_newline)
                return InvocationResponse(b"", content_type, spooled)
            return InvocationResponse(worker.conn.recv_bytes(), reply[1])
        except (EOFError, OSError, BrokenPipeError) as exc:
            raise ModelConnectionError(
                f"handler worker process exited with code {_exit_code(worker)}"
            ) from exc

    def _exchange_many(
        self,
        worker: _Worker,
        requests: list[InvocationRequest],
        answers: list[InvocationResponse | InvocationError],
    ) -> None:
        """The worker reports answers at least every timeout/4 seconds, so one call that
        hangs is noticed about when a single request's timeout would notice it."""
        first = requests[0]
        timeout = first.timeout_seconds
        try:
            worker.conn.send(("many", first.content_type, first.accept, timeout / 4))
            worker.conn.send([request.payload for request in requests])
            while len(answers) < len(requests):
                if not worker.conn.poll(timeout * 1.25):
                    raise ModelTimeoutError(timeout)
                answers.extend(_many_answer(*reply) for reply in worker.conn.recv())
        except (EOFError, OSError) as exc:
            raise ModelConnectionError(
                f"handler worker process exited with code {_exit_code(worker)}"
            ) from exc

    def _exchange_isolating(
        self, worker: _Worker, request: InvocationRequest, plan: IsolationPlan
    ) -> Isolated:
        timeout = request.timeout_seconds
        options = (timeout / 4, astuple(plan))
        try:
            _send_payload(worker, request, "isolate", options)
            while True:
                if not worker.conn.poll(timeout * 1.25):
                    raise ModelTimeoutError(timeout)
                reply = worker.conn.recv()
                if reply[0] == "isolated":
                    return Isolated(*reply[1:])
        except (EOFError, OSError) as exc:
            raise ModelConnectionError(
                f"handler worker process exited with code {_exit_code(worker)}"
            ) from exc

    def _replace(self, worker: _Worker) -> _Worker:
        """A worker that timed out or died is killed and a fresh one loaded in its place."""
        _close_quietly(worker)
        _reap(worker, grace=0.0)
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
            if self._stopped:
                return worker
        self.restarts += 1
        self._context.count("model_restarts", 1)
        self._context.log(f"{self._context.instance_name}: restarting handler worker")
        fresh = self._spawn()
        try:
            self._await_ready(fresh)
        except RuntimeStartError as exc:
            # Keep the dead worker in the pool: the next invocation fails fast and tries
            # again, so retries stay bounded by InvocationsMaxRetries.
            self._context.log(f"{self._context.instance_name}: {exc}")
            return fresh
        return fresh


def _many_answer(status: object, detail: object, body: object) -> InvocationResponse | ModelError:
    if status == "ok":
        return InvocationResponse(body, detail)  # type: ignore[arg-type]
    return ModelError(detail, body)  # type: ignore[arg-type]


def _send_payload(
    worker: _Worker,
    request: InvocationRequest,
    kind: str = "one",
    options: tuple[object, ...] | None = None,
) -> None:
    """A large payload goes as a memfd the worker reads in one go; small ones inline."""
    options = (request.spool_answer,) if options is None else options
    header = (kind, request.content_type, request.accept, *options)
    if len(request.payload) < SPOOL_MIN_BYTES:
        worker.conn.send((*header, None))
        worker.conn.send_bytes(request.payload)
        return
    fd = spool(request.payload)
    try:
        worker.conn.send((*header, len(request.payload)))
        send_fd(worker.sock, fd)
    finally:
        os.close(fd)


def _exit_code(worker: _Worker) -> int | None:
    try:
        return worker.process.wait(timeout=1)
    except subprocess.TimeoutExpired:
        return None


def _reap(worker: _Worker, grace: float) -> None:
    """Wait for a worker whose pipe is closed to exit; kill it when it will not."""
    try:
        worker.process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        worker.process.kill()
        worker.process.wait(timeout=5)


def _close_quietly(worker: _Worker) -> None:
    with contextlib.suppress(OSError):
        worker.conn.close()
    with contextlib.suppress(OSError):
        worker.sock.close()
