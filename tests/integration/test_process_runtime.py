"""ProcessRuntime against real model processes on loopback (models in tests/models/)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import urllib3

from batchform.errors import (
    ConfigurationError,
    ModelConnectionError,
    ModelError,
    ModelTimeoutError,
    RuntimeStartError,
)
from batchform.runtimes.base import InvocationRequest, RuntimeContext
from batchform.runtimes.process import (
    ProcessRuntime,
    ServeSettings,
    runtime_for_container,
    serve_command,
)

MODELS = Path(__file__).resolve().parent.parent / "models"
ECHO = MODELS / "echo"

RuntimeFactory = Callable[..., ProcessRuntime]


@pytest.fixture(autouse=True)
def fast_python(monkeypatch: pytest.MonkeyPatch) -> None:
    # The models' `#!/usr/bin/env python3` should find this interpreter, not a slow shim.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    monkeypatch.setenv("PATH", path)


@pytest.fixture
def log_lines() -> list[str]:
    return []


@pytest.fixture
def make_runtime(tmp_path: Path, log_lines: list[str]) -> Iterator[RuntimeFactory]:
    """Builds started runtimes for the echo model (or another command); stops them all."""
    made: list[ProcessRuntime] = []

    def build(
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        start: bool = True,
        **settings: Any,
    ) -> ProcessRuntime:
        context = RuntimeContext(
            instance_name="instance-1",
            workspace=str(tmp_path / f"workspace-{len(made)}"),
            environment=env or {},
            log=log_lines.append,
        )
        options = ServeSettings(**{"startup_timeout": 20.0, "stop_grace": 2.0, **settings})
        runtime = ProcessRuntime(command or serve_command(ECHO), context=context, settings=options)
        made.append(runtime)
        if start:
            runtime.start()
        return runtime

    yield build
    for runtime in made:
        runtime.stop()


def request(payload: bytes, timeout: float = 10.0, **headers: str | None) -> InvocationRequest:
    return InvocationRequest(
        payload=payload,
        content_type=headers.get("content_type", "text/csv"),
        accept=headers.get("accept", "text/csv"),
        timeout_seconds=timeout,
    )


def get_json(runtime: ProcessRuntime, path: str) -> Any:
    assert runtime.url is not None
    response = urllib3.request("GET", runtime.url + path, timeout=5.0)
    assert response.status == 200
    return json.loads(response.data)


def live_group_members(pgid: int) -> list[int]:
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return members


def running_models(workspaces: Path) -> list[int]:
    """Model processes of this test (they run in its workspaces) that still run."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.cwd().startswith(str(workspaces)) and is_running(child.pid):
                found.append(child.pid)
        except psutil.Error:
            continue
    return found


def is_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_echo_model_answers_and_stop_leaves_no_process(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime()
    pid = runtime.pid
    assert pid is not None and is_running(pid)

    response = runtime.invoke(request(b"1,2,3\n4,5,6\n", accept="application/json"))

    assert response.body == b"1,2,3\n4,5,6\n"
    assert response.content_type == "application/json"
    runtime.stop()
    runtime.stop()  # stopping twice is allowed
    assert not is_running(pid)
    assert live_group_members(pid) == []
    assert runtime.pid is None


def test_model_is_started_with_the_contract_environment(
    make_runtime: RuntimeFactory, tmp_path: Path
) -> None:
    runtime = make_runtime(
        env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "2", "MODEL_SETTING": "x"},
        concurrency=3,
        max_payload_in_mb=5,
        batch_strategy="SingleRecord",
    )
    report = get_json(runtime, "/env")
    assert isinstance(report, dict)
    environ, workspace = report["environ"], str(tmp_path / "workspace-0")

    assert runtime.url == f"http://127.0.0.1:{environ['SAGEMAKER_BIND_TO_PORT']}"
    assert environ["SAGEMAKER_BASE_DIR"] == workspace
    assert environ["SM_MODEL_DIR"] == os.path.join(workspace, "model")
    assert environ["SAGEMAKER_BATCH"] == "true"
    assert environ["SAGEMAKER_BATCH_STRATEGY"] == "SINGLE_RECORD"
    assert environ["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] == "3"
    assert environ["SAGEMAKER_MAX_PAYLOAD_IN_MB"] == "2"  # the model's Environment wins
    assert environ["MODEL_SETTING"] == "x"
    assert environ["PATH"] == os.environ["PATH"]  # our environment is passed through
    assert report["cwd"] == workspace
    for folder in ("model", "code", "input/config", "output"):
        assert (tmp_path / "workspace-0" / folder).is_dir()


def test_content_type_and_accept_are_sent_only_when_given(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime()

    given = json.loads(runtime.invoke(request(b"__headers__")).body)
    omitted = json.loads(
        runtime.invoke(request(b"__headers__", content_type=None, accept=None)).body
    )

    assert (given["Content-Type"], given["Accept"]) == ("text/csv", "text/csv")
    assert "Content-Type" not in omitted and "Accept" not in omitted


@pytest.mark.parametrize("spelling", ["MULTI_RECORD", "MultiRecord"])
def test_execution_parameters_in_either_spelling(
    make_runtime: RuntimeFactory, spelling: str
) -> None:
    said = {"MaxConcurrentTransforms": 4, "BatchStrategy": spelling, "MaxPayloadInMB": 12}
    runtime = make_runtime(env={"ECHO_EXECUTION_PARAMETERS": json.dumps(said)})

    parameters = runtime.execution_parameters()

    assert parameters.max_concurrent_transforms == 4
    assert parameters.batch_strategy == "MultiRecord"
    assert parameters.max_payload_in_mb == 12


def test_execution_parameters_absent_mean_no_opinion(make_runtime: RuntimeFactory) -> None:
    parameters = make_runtime().execution_parameters()

    assert parameters.max_concurrent_transforms is None
    assert parameters.batch_strategy is None
    assert parameters.max_payload_in_mb is None


def test_slow_model_is_waited_for(make_runtime: RuntimeFactory) -> None:
    started = time.monotonic()
    runtime = make_runtime(env={"ECHO_START_DELAY": "1.0"})

    assert time.monotonic() - started >= 1.0
    assert runtime.invoke(request(b"late")).body == b"late"


def test_model_that_never_answers_ping_fails_start(
    make_runtime: RuntimeFactory, log_lines: list[str], tmp_path: Path
) -> None:
    runtime = make_runtime(env={"ECHO_PING_STATUS": "500"}, start=False, startup_timeout=1.0)
    started = time.monotonic()

    with pytest.raises(
        RuntimeStartError, match=r"did not answer /ping within 1 s \(waited 1\.\d s\)"
    ):
        runtime.start()

    assert time.monotonic() - started < 5.0
    assert any("listening on port" in line for line in log_lines)  # it did run
    assert running_models(tmp_path) == []


def test_model_exiting_during_start_up_fails_start(
    make_runtime: RuntimeFactory, tmp_path: Path
) -> None:
    runtime = make_runtime(env={"ECHO_EXIT_AT_START": "7"}, start=False)

    with pytest.raises(RuntimeStartError) as caught:
        runtime.start()
    assert running_models(tmp_path) == []

    message = str(caught.value)
    assert "model process exited with code 7 during start-up" in message
    assert "refusing to start" in message


def test_model_error_status_is_a_model_error(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime(env={"ECHO_FAIL_MARKER": "BAD"})

    with pytest.raises(ModelError) as caught:
        runtime.invoke(request(b"1,BAD,3"))

    assert caught.value.status == 500
    assert "fail marker" in caught.value.message
    assert runtime.restarts == 0
    assert runtime.invoke(request(b"fine")).body == b"fine"


def test_crash_mid_request_restarts_the_model(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime(env={"ECHO_CRASH_ON_REQUEST": "2"})
    first_pid = runtime.pid
    assert runtime.invoke(request(b"one")).body == b"one"

    with pytest.raises(ModelConnectionError) as caught:
        runtime.invoke(request(b"two"))

    assert "exited with code 3" in str(caught.value)
    assert "crashing: invocation 2" in str(caught.value)  # the model's last words
    assert runtime.restarts == 1
    assert runtime.pid != first_pid
    assert runtime.invoke(request(b"two again")).body == b"two again"


def test_restarts_are_bounded(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime(env={"ECHO_CRASH_MARKER": "BOOM"}, max_restarts=2)

    for _ in range(2):
        with pytest.raises(ModelConnectionError, match="restarted it"):
            runtime.invoke(request(b"BOOM"))
    with pytest.raises(ModelConnectionError, match="limit of 2 restarts"):
        runtime.invoke(request(b"BOOM"))

    assert runtime.restarts == 2
    with pytest.raises(ModelConnectionError, match="limit of 2 restarts"):
        runtime.invoke(request(b"harmless"))


def test_concurrent_failures_restart_the_model_once(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime(
        env={"ECHO_SLEEP_MARKER": "SLOW", "ECHO_SLEEP_SECONDS": "3", "ECHO_CRASH_MARKER": "BOOM"},
        concurrency=4,
    )
    errors: list[Exception] = []

    def call(payload: bytes) -> None:
        try:
            runtime.invoke(request(payload))
        except ModelConnectionError as exc:
            errors.append(exc)

    slow = [threading.Thread(target=call, args=(b"SLOW",)) for _ in range(3)]
    for thread in slow:
        thread.start()
    time.sleep(0.3)  # let the slow requests reach the model before it crashes
    call(b"BOOM")
    for thread in slow:
        thread.join(10)

    assert len(errors) == 4
    assert runtime.restarts == 1
    assert runtime.invoke(request(b"after")).body == b"after"


def test_hung_model_is_restarted_after_a_timeout(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime(env={"ECHO_SLEEP_MARKER": "HANG", "ECHO_SLEEP_SECONDS": "30"})
    hung_pid = runtime.pid

    with pytest.raises(ModelTimeoutError):
        runtime.invoke(request(b"HANG", timeout=0.5))

    assert runtime.restarts == 1
    assert hung_pid is not None and not is_running(hung_pid)
    assert runtime.invoke(request(b"next")).body == b"next"


def test_stop_kills_children_that_ignore_sigterm(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime(env={"ECHO_CHILD": "1"}, stop_grace=0.5)
    children = get_json(runtime, "/children")
    assert isinstance(children, list) and len(children) == 1
    assert is_running(children[0])

    runtime.stop()

    assert not is_running(children[0])


def test_model_output_goes_to_the_log(make_runtime: RuntimeFactory, log_lines: list[str]) -> None:
    runtime = make_runtime()
    runtime.invoke(request(b"abc"))
    runtime.stop()  # joins the log readers

    assert any(line.startswith("instance-1: echo model: listening on port") for line in log_lines)
    assert "instance-1: echo model: stderr is captured too" in log_lines
    assert "instance-1: echo model: invocation 1 with 3 bytes" in log_lines


def test_model_data_is_extracted_into_the_model_dir(tmp_path: Path, log_lines: list[str]) -> None:
    tarball = tmp_path / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        weights = b"0.5,0.25\n"
        member = tarfile.TarInfo("weights.csv")
        member.size = len(weights)
        archive.addfile(member, io.BytesIO(weights))
    context = RuntimeContext("instance-1", str(tmp_path / "ws"), log=log_lines.append)
    runtime = runtime_for_container(
        str(ECHO),
        model_data_url=tarball.as_uri(),
        context=context,
        concurrency=1,
        max_payload_in_mb=6,
        batch_strategy="MultiRecord",
        startup_timeout=20.0,
    )

    with runtime:
        assert get_json(runtime, "/env")["model_files"] == ["weights.csv"]

    assert runtime.model_digest == hashlib.sha256(tarball.read_bytes()).hexdigest()


def test_model_folder_next_to_serve_is_the_model_dir(tmp_path: Path, log_lines: list[str]) -> None:
    folder = tmp_path / "my-model"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "weights.bin").write_bytes(b"\x00\x01")
    shutil.copy2(ECHO / "serve", folder / "serve")
    context = RuntimeContext("instance-1", str(tmp_path / "ws"), log=log_lines.append)

    runtime = runtime_for_container(
        folder.as_uri(),
        model_data_url=None,
        context=context,
        concurrency=1,
        max_payload_in_mb=6,
        batch_strategy="MultiRecord",
    )

    with runtime:
        assert get_json(runtime, "/env")["model_files"] == ["weights.bin"]


def test_entrypoint_is_run_with_the_serve_argument(make_runtime: RuntimeFactory) -> None:
    command = serve_command(MODELS / "entrypoint_echo")
    assert command == [str(MODELS / "entrypoint_echo" / "entrypoint"), "serve"]

    runtime = make_runtime(command=command)

    assert runtime.invoke(request(b"via entrypoint")).body == b"via entrypoint"


def test_folder_without_a_runnable_serve_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no executable 'serve'"):
        serve_command(tmp_path)
    (tmp_path / "serve").write_text("#!/bin/sh\n")
    with pytest.raises(ConfigurationError, match="serve is not executable"):
        serve_command(tmp_path)
    with pytest.raises(ConfigurationError, match="does not exist"):
        serve_command(tmp_path / "absent")


@pytest.mark.skipif(shutil.which("perl") is None, reason="perl is not installed")
def test_model_written_in_perl(make_runtime: RuntimeFactory, log_lines: list[str]) -> None:
    runtime = make_runtime(command=serve_command(MODELS / "perl_echo"))

    response = runtime.invoke(request(b"a\nb\n", accept="text/plain"))
    again = runtime.invoke(request(b"c\n", accept="text/plain"))

    assert (response.body, response.content_type) == (b"a\nb\n", "text/plain")
    assert again.body == b"c\n"
    assert any("perl model: listening" in line for line in log_lines)
