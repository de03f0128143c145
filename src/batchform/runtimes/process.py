"""A model served by a process of its own: any `serve` executable, in any language.

One `ProcessRuntime` is one instance's model container. It lays out the instance's
`/opt/ml`-shaped workspace, starts `serve` with the serving contract's environment
(DESIGN §3.1), waits for `/ping`, and then calls the model through an `HttpRuntime`.
When the process dies or hangs under an invocation it is restarted (a bounded number
of times) and the failed invocation is reported so the engine can retry it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlparse

import psutil

from batchform.errors import (
    ConfigurationError,
    InvocationError,
    ModelConnectionError,
    ModelTimeoutError,
    RuntimeStartError,
)
from batchform.runtimes.base import (
    ExecutionParameters,
    InvocationRequest,
    InvocationResponse,
    Runtime,
    RuntimeContext,
)
from batchform.runtimes.http import HttpRuntime
from batchform.runtimes.modeldata import extract_model_data
from batchform.runtimes.workspace import (
    Workspace,
    contract_environment,
    create_workspace,
    free_port,
    interpreter_first,
    link_model_folder,
)

# Enough of the model's output to explain a crash in a FailureReason.
TAIL_LINES = 50
_LONGEST_PING_PAUSE = 0.5
_LONGEST_PING_WAIT = 2.0
_EXIT_SETTLE_SECONDS = 0.5
_KILL_SETTLE_SECONDS = 2.0

LineSink = Callable[[str], None]


@dataclass(frozen=True)
class ServeSettings:
    """How one instance's model process is run and looked after."""

    concurrency: int = 1
    # Keep-alive connections to the model; None: as many as `concurrency`. Larger than
    # the requested concurrency when /execution-parameters may raise it after start.
    connections: int | None = None
    max_payload_in_mb: int = 6
    batch_strategy: str = "MultiRecord"
    startup_timeout: float = 600.0
    stop_grace: float = 10.0
    max_restarts: int = 3


def container_folder(folder_or_uri: str) -> Path:
    """The folder named by a plain path or a `file://` URI."""
    if folder_or_uri.startswith("file://"):
        parsed = urlparse(folder_or_uri)
        if parsed.netloc not in ("", "localhost"):
            raise ConfigurationError(f"{folder_or_uri}: only local file:// URIs can be served")
        return Path(unquote(parsed.path))
    return Path(folder_or_uri)


def serve_command(folder: Path) -> list[str]:
    """`<folder>/serve`, or `<folder>/entrypoint serve` as an image entrypoint gets it."""
    if not folder.is_dir():
        raise ConfigurationError(f"model folder {folder} does not exist")
    return container_command(folder, "serve")


def container_command(folder: Path, verb: str) -> list[str]:
    """`<folder>/<verb>`, or `<folder>/entrypoint <verb>` as `docker run <image> <verb>`
    starts an image. The path is absolute: the process starts in its own workspace."""
    for name, arguments in ((verb, []), ("entrypoint", [verb])):
        executable = folder / name
        if executable.is_file():
            if not os.access(executable, os.X_OK):
                raise ConfigurationError(f"{executable} is not executable (chmod +x it)")
            return [str(executable.absolute()), *arguments]
    raise ConfigurationError(f"{folder} has no executable '{verb}' or 'entrypoint'")


def runtime_for_container(
    folder_or_uri: str,
    *,
    model_data_url: str | None,
    context: RuntimeContext,
    concurrency: int,
    max_payload_in_mb: int,
    batch_strategy: str,
    startup_timeout: float = 600.0,
    connections: int | None = None,
) -> ProcessRuntime:
    """The (not yet started) runtime of one instance of a process-container model."""
    folder = container_folder(folder_or_uri)
    bundled = folder / "model"
    settings = ServeSettings(
        concurrency=concurrency,
        connections=connections,
        max_payload_in_mb=max_payload_in_mb,
        batch_strategy=batch_strategy,
        startup_timeout=startup_timeout,
    )
    return ProcessRuntime(
        serve_command(folder),
        context=context,
        settings=settings,
        model_data_url=model_data_url,
        bundled_model_dir=str(bundled) if bundled.is_dir() else None,
    )


class _ServeProcess:
    """The model's process group, with its output pumped into the job log."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: Path, log: LineSink):
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        try:
            self._popen = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=interpreter_first(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # Its own process group, so stopping it reaches every child it forks.
                start_new_session=True,
            )
        except OSError as exc:
            raise RuntimeStartError(f"cannot start {argv[0]}: {exc}") from exc
        self.pid = self._popen.pid
        self._readers = [self._pump(stream, log) for stream in self._streams()]

    def _streams(self) -> list[IO[bytes]]:
        return [stream for stream in (self._popen.stdout, self._popen.stderr) if stream]

    def _pump(self, stream: IO[bytes], log: LineSink) -> threading.Thread:
        def read_lines() -> None:
            # The pipe is closed under us if a child that left the group keeps it open.
            with contextlib.suppress(OSError, ValueError):
                for raw in iter(stream.readline, b""):
                    line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                    self.tail.append(line)
                    # A broken log sink must not stop the reading, or the pipe fills and
                    # the model blocks on its next print.
                    with contextlib.suppress(Exception):
                        log(line)

        reader = threading.Thread(target=read_lines, name=f"serve-log-{self.pid}", daemon=True)
        reader.start()
        return reader

    def exit_code(self, wait: float = 0.0) -> int | None:
        try:
            return self._popen.wait(wait) if wait > 0 else self._popen.poll()
        except subprocess.TimeoutExpired:
            return None

    def exit_note(self) -> str:
        code = self._popen.poll()
        note = f"exited with code {code}"
        if code is not None and code < 0:
            note += f" (signal {signal.Signals(-code).name})"
        return note

    def last_lines(self) -> str:
        # The lines printed just before an exit may still be in the pipe.
        self._join_readers(0.5)
        return " | ".join(self.tail) if self.tail else "(no output)"

    def terminate(self, grace: float) -> None:
        """SIGTERM to the whole group, SIGKILL to whatever is left after `grace`."""
        _signal_group(self.pid, signal.SIGTERM)
        _wait_for_group(self.pid, grace)
        _signal_group(self.pid, signal.SIGKILL)
        # SIGKILL lands asynchronously; "stopped" should mean gone, for callers and tests.
        _wait_for_group(self.pid, _KILL_SETTLE_SECONDS)
        self._popen.wait()
        self._join_readers(2.0)
        for stream in self._streams():
            stream.close()

    def _join_readers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for reader in self._readers:
            reader.join(max(0.0, deadline - time.monotonic()))


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    # Already gone is the outcome we want, not an error.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _wait_for_group(pgid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies do not count).

    `killpg(pgid, 0)` is not enough: orphans re-parented to an init that does not reap
    (as in many containers) stay zombies in the group forever.
    """
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (OSError, psutil.Error):
            continue
    return False


def _wait_until_ready(process: _ServeProcess, client: HttpRuntime, timeout: float) -> None:
    """Poll GET /ping, more slowly as time goes on, until 200, exit or timeout."""
    started = time.monotonic()
    pause = 0.05
    while True:
        if process.exit_code() is not None:
            raise RuntimeStartError(
                f"model process {process.exit_note()} during start-up; "
                f"last lines: {process.last_lines()}"
            )
        remaining = timeout - (time.monotonic() - started)
        if client.ping(timeout=max(0.05, min(_LONGEST_PING_WAIT, remaining))):
            return
        waited = time.monotonic() - started
        if waited >= timeout:
            raise RuntimeStartError(
                f"model did not answer /ping within {timeout:g} s (waited {waited:.1f} s)"
            )
        time.sleep(min(pause, timeout - waited))
        pause = min(pause * 2, _LONGEST_PING_PAUSE)


class ProcessRuntime(Runtime):
    """One instance's model process, started, watched and restarted when it fails.

    `invoke` is called from up to `concurrency` threads at once. When several of them
    fail because the process died, only the first restarts it: each invocation
    remembers the generation of the process it used, and a failure from an older
    generation than the current one has already been dealt with.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        context: RuntimeContext,
        settings: ServeSettings | None = None,
        model_data_url: str | None = None,
        bundled_model_dir: str | None = None,
    ) -> None:
        self.command = list(command)
        self.context = context
        self.settings = settings or ServeSettings()
        self.model_data_url = model_data_url
        self.bundled_model_dir = bundled_model_dir
        self.restarts = 0
        self.model_digest: str | None = None
        self._lock = threading.Lock()
        self._generation = 0
        self._workspace: Workspace | None = None
        self._process: _ServeProcess | None = None
        self._client: HttpRuntime | None = None
        self._down_reason = "not started"

    @property
    def url(self) -> str | None:
        return self._client.url if self._client else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        if self._process is not None:
            return
        workspace = create_workspace(self.context.workspace)
        if self.model_data_url is not None:
            self.model_digest = extract_model_data(self.model_data_url, workspace.model_dir)
        elif self.bundled_model_dir is not None:
            link_model_folder(workspace, self.bundled_model_dir)
        with self._lock:
            self._workspace = workspace
            self._launch()

    def execution_parameters(self) -> ExecutionParameters:
        return self._current()[1].execution_parameters()

    def invoke(self, request: InvocationRequest) -> InvocationResponse:
        generation, client = self._current()
        try:
            return client.invoke(request)
        except (ModelConnectionError, ModelTimeoutError) as exc:
            better = self._recover(generation, exc)
            if better is None:
                raise
            raise better from exc

    def stop(self) -> None:
        with self._lock:
            self._workspace = None
            self._retire("model process stopped")

    def ensure_running(self) -> bool:
        """Start a new process if the current one has exited (a watchdog's call, for
        models that serve between invocations); whether one is running afterwards."""
        with self._lock:
            process = self._process
            if process is not None and process.exit_code() is None:
                return True
            if self._workspace is None:
                return False
            if process is not None:
                self._retire(
                    f"model process {process.exit_note()}; last lines: {process.last_lines()}"
                )
            try:
                self._revive()
            except ModelConnectionError as exc:
                self._log(str(exc))
                return False
            return True

    def _log(self, line: str) -> None:
        self.context.log(f"{self.context.instance_name}: {line}")

    def _launch(self) -> None:
        """Start a process on a fresh port and wait until it answers (lock held)."""
        assert self._workspace is not None
        port = free_port()
        environment = contract_environment(
            port=port,
            base_dir=self._workspace.root,
            max_payload_in_mb=self.settings.max_payload_in_mb,
            batch_strategy=self.settings.batch_strategy,
            max_concurrent_transforms=self.settings.concurrency,
            model_environment=self.context.environment,
        )
        process = _ServeProcess(
            self.command, {**os.environ, **environment}, self._workspace.root, self._log
        )
        connections = self.settings.connections or self.settings.concurrency
        client = HttpRuntime(f"http://127.0.0.1:{port}", connections)
        try:
            _wait_until_ready(process, client, self.settings.startup_timeout)
        except RuntimeStartError as exc:
            process.terminate(self.settings.stop_grace)
            client.stop()
            self._down_reason = str(exc)
            raise
        self._process, self._client = process, client

    def _current(self) -> tuple[int, HttpRuntime]:
        with self._lock:
            if self._client is None:
                self._revive()
            assert self._client is not None
            return self._generation, self._client

    def _revive(self) -> None:
        """Start the process again if the restart budget allows (lock held)."""
        if self._workspace is None:
            raise ModelConnectionError(f"model process is not running ({self._down_reason})")
        limit = self.settings.max_restarts
        if self.restarts >= limit:
            raise ModelConnectionError(
                f"not restarting the model process, the limit of {limit} restarts is "
                f"reached (last failure: {self._down_reason})"
            )
        self.restarts += 1
        self.context.count("model_restarts", 1)
        self._log(f"restarting the model process ({self.restarts} of {limit}): {self._down_reason}")
        try:
            self._launch()
        except RuntimeStartError as exc:
            raise ModelConnectionError(f"model process could not be restarted: {exc}") from exc

    def _recover(self, generation: int, error: InvocationError) -> InvocationError | None:
        """Restart a dead or hung process; a clearer error to raise when it died."""
        with self._lock:
            process = self._process
            if process is None or generation != self._generation:
                return None  # stopped, or another thread already restarted it
            timed_out = isinstance(error, ModelTimeoutError)
            # A connection reset can arrive a moment before the dying process is reaped.
            if process.exit_code(0.0 if timed_out else _EXIT_SETTLE_SECONDS) is not None:
                reason = f"model process {process.exit_note()}; last lines: {process.last_lines()}"
                return ModelConnectionError(f"{error}; {self._replace(reason)}")
            if isinstance(error, ModelTimeoutError):
                # Alive but not answering: a hung model only gets well by a restart.
                self._replace(f"model process did not answer within {error.seconds:g} s")
            return None  # or a live process dropped one connection: the engine retries

    def _replace(self, reason: str) -> str:
        """Retire the current process and start another (lock held); says what happened."""
        self._retire(reason)
        try:
            self._revive()
        except ModelConnectionError as down:
            return f"{reason}; {down}"
        return f"{reason}; restarted it"

    def _retire(self, reason: str) -> None:
        """Stop the current process for good (lock held); in-flight callers see a new
        generation and leave the recovery to whoever retired it."""
        self._generation += 1
        self._down_reason = reason
        process, client = self._process, self._client
        self._process = self._client = None
        if client is not None:
            client.stop()
        if process is not None:
            process.terminate(self.settings.stop_grace)
