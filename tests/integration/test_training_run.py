"""Training jobs run for real: a Perl `train` (tests/models/perl_train), the built-in PCA,
channels on local disk and on the S3-compatible test server, and `batchform train`."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from click.testing import CliRunner

from batchform.cli_train import train
from batchform.jobs.lifecycle import JobStatus
from batchform.training import (
    SecondaryStatus,
    SecondaryStatusTransition,
    TrainingOutcome,
    TrainingRun,
    parse_training_request,
)

PERL_TRAIN = Path(__file__).resolve().parents[1] / "models" / "perl_train"
S = SecondaryStatus


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BATCHFORM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A `train` channel folder: two CSV files, one in a sub-folder."""
    (tmp_path / "data" / "deep").mkdir(parents=True)
    (tmp_path / "data" / "a.csv").write_text("1,2\n3,4\n")
    (tmp_path / "data" / "deep" / "b.csv").write_text("5,6\n")
    return tmp_path / "data"


def request_body(
    channel: str, output: str, hyperparameters: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    source = {"S3DataType": "S3Prefix", "S3Uri": channel}
    body: dict[str, Any] = {
        "TrainingJobName": "perl-job",
        "AlgorithmSpecification": {"TrainingImage": str(PERL_TRAIN), "TrainingInputMode": "File"},
        "HyperParameters": hyperparameters,
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": source},
                "ContentType": "text/csv",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": output},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }
    body.update(overrides)
    return body


def run_job(body: dict[str, Any], **options: Any) -> tuple[TrainingRun, TrainingOutcome]:
    run = TrainingRun(parse_training_request(body), **options)
    return run, run.run()


def statuses(outcome: TrainingOutcome) -> list[SecondaryStatus]:
    return [entry.status for entry in outcome.secondary_status_transitions]


def members(tarball: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        return {
            member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        }


def test_perl_train_completes_and_its_model_is_uploaded(data: Path, tmp_path: Path) -> None:
    seen: list[SecondaryStatusTransition] = []
    metrics = [{"Name": "train:loss", "Regex": r"loss=([0-9.]+)"}]
    body = request_body(str(data), str(tmp_path / "out"), {"scale": "2", "epochs": "2"})
    body["AlgorithmSpecification"]["MetricDefinitions"] = metrics
    run, outcome = run_job(body, on_status=seen.append)

    assert (outcome.status, outcome.failure_reason) == (JobStatus.COMPLETED, None)
    model_url = str(tmp_path / "out" / "perl-job" / "output" / "model.tar.gz")
    assert outcome.model_artifacts_url == model_url
    assert members(Path(model_url).read_bytes()) == {"model.txt": b"rows=3\nsums=18,24\n"}
    output = members((tmp_path / "out" / "perl-job" / "output" / "output.tar.gz").read_bytes())
    assert output == {"files.txt": b"a.csv\ndeep/b.csv\n"}  # keys kept below the channel

    assert statuses(outcome) == [S.STARTING, S.DOWNLOADING, S.TRAINING, S.UPLOADING, S.COMPLETED]
    transitions = outcome.secondary_status_transitions
    # Reported live, in order, each as it began.
    assert [(e.status, e.start_time) for e in seen] == [
        (e.status, e.start_time) for e in transitions
    ]
    for entry, following in itertools.pairwise(transitions):
        assert entry.end_time == following.start_time
    assert [m["MetricName"] for m in outcome.final_metrics or []] == ["train:loss"]
    assert (outcome.final_metrics or [{}])[0]["Value"] == 0.5  # the last value printed

    log = run.log_path.read_text()
    assert "[algo-1] perl train: epoch 2/2 rows=3 loss=0.500" in log
    assert "[data-log] channel train: 2 object(s), 12 bytes" in log
    assert list(run.job_dir.glob("workspace-*")) == []  # cleaned up


def test_uncompressed_model_output_leaves_the_files_under_model(data: Path, tmp_path: Path) -> None:
    body = request_body(str(data), str(tmp_path / "out"), {})
    body["OutputDataConfig"]["CompressionType"] = "NONE"
    _, outcome = run_job(body)
    model_prefix = tmp_path / "out" / "perl-job" / "output" / "model"
    assert outcome.model_artifacts_url == f"{model_prefix}/"
    assert (model_prefix / "model.txt").read_text() == "rows=3\nsums=9,12\n"


def test_a_failure_file_becomes_the_failure_reason(data: Path, tmp_path: Path) -> None:
    reason = "ClientError: feature_dim must be 2, the data has 3 columns"
    body = request_body(str(data), str(tmp_path / "out"), {"mode": "fail", "reason": reason})
    run, outcome = run_job(body)
    assert (outcome.status, outcome.failure_reason) == (JobStatus.FAILED, reason)
    assert statuses(outcome) == [S.STARTING, S.DOWNLOADING, S.TRAINING, S.FAILED]
    assert outcome.model_artifacts_url is None
    assert not (tmp_path / "out").exists()
    assert list(run.job_dir.glob("workspace-*")) == []


def test_a_long_failure_file_is_cut_at_1024_characters(data: Path, tmp_path: Path) -> None:
    body = request_body(str(data), str(tmp_path / "out"), {"mode": "fail", "reason": "x" * 2000})
    _, outcome = run_job(body)
    assert outcome.failure_reason == "x" * 1024


def test_a_crash_reports_the_exit_code_and_last_lines(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHFORM_KEEP_FAILED_WORKSPACE", "1")
    run, outcome = run_job(request_body(str(data), str(tmp_path / "out"), {"mode": "crash"}))
    assert outcome.status is JobStatus.FAILED
    reason = outcome.failure_reason or ""
    assert reason.startswith("AlgorithmError: ")
    assert "perl train: something broke" in reason
    assert reason.endswith("exit code: 2")
    [kept] = run.job_dir.glob("workspace-*")  # kept for a look, as asked
    assert (kept / "input" / "data" / "train" / "deep" / "b.csv").exists()


def pids_from(pid_file: Path, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_file.exists() and pid_file.read_text().endswith("\n"):
            return [int(pid) for pid in pid_file.read_text().split()]
        time.sleep(0.05)
    raise AssertionError(f"{pid_file} was not written")


def assert_gone(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, f"{pid} still runs"


def sleeping_job(tmp_path: Path, data: Path, **hyperparameters: str) -> dict[str, Any]:
    hyperparameters = {"mode": "sleep", "seconds": "600", **hyperparameters}
    environment = {"PID_FILE": str(tmp_path / "pids")}
    return request_body(str(data), str(tmp_path / "out"), hyperparameters, Environment=environment)


def test_max_runtime_stops_the_job_and_keeps_the_saved_model(data: Path, tmp_path: Path) -> None:
    body = sleeping_job(tmp_path, data)
    body["StoppingCondition"] = {"MaxRuntimeInSeconds": 2}
    started = time.monotonic()
    run, outcome = run_job(body, stop_grace=10)
    assert time.monotonic() - started < 20
    assert outcome.status is JobStatus.STOPPED
    assert outcome.secondary_status is S.MAX_RUNTIME_EXCEEDED
    assert statuses(outcome)[-3:] == [S.TRAINING, S.UPLOADING, S.MAX_RUNTIME_EXCEEDED]
    assert_gone(pids_from(tmp_path / "pids"))
    # The algorithm saved a checkpoint on SIGTERM; SageMaker uploads it, so do we.
    tarball = Path(outcome.model_artifacts_url or "").read_bytes()
    assert members(tarball)["checkpoint.txt"].startswith(b"stopped after")
    assert "[algo-1] perl train: SIGTERM, checkpoint saved" in run.log_path.read_text()


def test_an_algorithm_ignoring_sigterm_is_killed_after_the_grace(
    data: Path, tmp_path: Path
) -> None:
    body = sleeping_job(tmp_path, data, ignore_term="1")
    body["StoppingCondition"] = {"MaxRuntimeInSeconds": 1}
    _, outcome = run_job(body, stop_grace=0.5)
    assert outcome.secondary_status is S.MAX_RUNTIME_EXCEEDED
    assert outcome.model_artifacts_url is None  # it saved nothing
    assert_gone(pids_from(tmp_path / "pids"))


def test_stop_mid_run_stops_the_process_group(data: Path, tmp_path: Path) -> None:
    run = TrainingRun(parse_training_request(sleeping_job(tmp_path, data)), stop_grace=10)
    outcomes: list[TrainingOutcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(run.run()))
    worker.start()
    pids = pids_from(tmp_path / "pids")
    assert run.secondary_status is S.TRAINING
    assert run.pid == pids[0]
    run.stop.set()
    worker.join(30)
    [outcome] = outcomes
    assert (outcome.status, outcome.secondary_status) == (JobStatus.STOPPED, S.STOPPED)
    assert statuses(outcome)[-4:] == [S.TRAINING, S.STOPPING, S.UPLOADING, S.STOPPED]
    assert_gone(pids)
    assert run.pid is None


def test_a_stop_before_training_runs_nothing(data: Path, tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    _, outcome = run_job(sleeping_job(tmp_path, data), stop=stop)
    assert statuses(outcome) == [S.STARTING, S.DOWNLOADING, S.STOPPING, S.STOPPED]
    assert not (tmp_path / "pids").exists()
    assert outcome.model_artifacts_url is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda body: body["AlgorithmSpecification"].update(TrainingImage="example/img:1"),
            "ClientError: training image 'example/img:1' cannot be run here",
        ),
        (
            lambda body: body["AlgorithmSpecification"].update(TrainingInputMode="FastFile"),
            "ClientError: channel 'train': TrainingInputMode FastFile is not supported yet",
        ),
        (
            lambda body: body["InputDataConfig"][0]["DataSource"]["S3DataSource"].update(
                S3Uri="/nonexistent/prefix"
            ),
            "ClientError: /nonexistent/prefix: no objects match prefix",
        ),
    ],
)
def test_jobs_that_cannot_start_fail_with_a_client_error(
    data: Path, tmp_path: Path, change: Callable[[dict[str, Any]], None], reason: str
) -> None:
    body = request_body(str(data), str(tmp_path / "out"), {})
    change(body)
    _, outcome = run_job(body)
    assert outcome.status is JobStatus.FAILED
    assert (outcome.failure_reason or "").startswith(reason)
    assert outcome.secondary_status is S.FAILED


def test_channel_and_output_on_s3(s3_bucket: str, s3_client: Any) -> None:
    bucket = s3_bucket.removeprefix("s3://")
    objects = {"data/train/part-1.csv": b"1,1\n2,2\n", "data/train/sub/part-2.csv": b"3,3\n"}
    for key, content in objects.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=content)
    # The sagemaker SDK's usual channel URI: a "folder" named without its trailing '/'.
    body = request_body(f"{s3_bucket}/data/train", f"{s3_bucket}/models", {})
    _, outcome = run_job(body)
    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    assert outcome.model_artifacts_url == f"{s3_bucket}/models/perl-job/output/model.tar.gz"
    model = s3_client.get_object(Bucket=bucket, Key="models/perl-job/output/model.tar.gz")
    assert members(model["Body"].read()) == {"model.txt": b"rows=3\nsums=6,6\n"}
    output = s3_client.get_object(Bucket=bucket, Key="models/perl-job/output/output.tar.gz")
    assert members(output["Body"].read()) == {"files.txt": b"part-1.csv\nsub/part-2.csv\n"}


def cli_command(*arguments: str) -> list[str]:
    entry = "from batchform.cli_train import train; train()"
    return [sys.executable, "-c", entry, *arguments]


def test_cli_trains_and_shows_each_status(data: Path, tmp_path: Path, home: Path) -> None:
    arguments = ["--image", str(PERL_TRAIN), "--channel", f"train={data}", "--hp", "scale=3"]
    arguments += ["--content-type", "text/csv", "--output", str(tmp_path / "out")]
    arguments += ["--job-name", "cli-job", "--max-runtime", "60"]
    env = {**os.environ, "BATCHFORM_HOME": str(home)}
    done = subprocess.run(cli_command(*arguments), env=env, capture_output=True, timeout=120)
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    for status in ("Starting", "Downloading", "Training", "Uploading", "Completed"):
        assert status in stderr
    model_url = tmp_path / "out" / "cli-job" / "output" / "model.tar.gz"
    assert str(model_url) in stderr
    assert members(model_url.read_bytes()) == {"model.txt": b"rows=3\nsums=27,36\n"}
    assert str(home / "training" / "cli-job" / "log") in stderr


def test_cli_exit_codes_for_failure_and_bad_flags(data: Path, tmp_path: Path) -> None:
    base = ["--image", str(PERL_TRAIN), "--output", str(tmp_path / "out")]
    failed = CliRunner().invoke(train, [*base, "--channel", f"train={data}", "--hp", "mode=fail"])
    assert failed.exit_code == 1
    assert "ClientError: no reason given" in failed.output
    bad = CliRunner().invoke(train, [*base, "--channel", f"train={data}", "--hp", "no-equals"])
    assert bad.exit_code == 2
    unknown = CliRunner().invoke(train, [*base, "--content-type", "test=text/csv"])
    assert unknown.exit_code == 2
    assert "no channel named 'test'" in unknown.output


def test_cli_spec_file_with_flags_on_top(data: Path, tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "TrainingJobName: spec-job\n"
        "AlgorithmSpecification: {TrainingImage: builtin:pca, TrainingInputMode: File}\n"
        "HyperParameters: {scale: '5'}\n"
        f"OutputDataConfig: {{S3OutputPath: {tmp_path / 'spec-out'}}}\n"
        "ResourceConfig: {InstanceType: ml.m5.large, InstanceCount: 1}\n"
    )
    flags = ["--spec", str(spec), "--image", str(PERL_TRAIN), "--channel", f"train={data}"]
    result = CliRunner().invoke(train, [*flags, "--content-type", "train=text/csv;label_size=0"])
    assert result.exit_code == 0, result.output
    model = tmp_path / "spec-out" / "spec-job" / "output" / "model.tar.gz"
    assert members(model.read_bytes()) == {"model.txt": b"rows=3\nsums=45,60\n"}


def test_cli_ctrl_c_stops_the_job_with_exit_130(data: Path, tmp_path: Path, home: Path) -> None:
    arguments = ["--image", str(PERL_TRAIN), "--channel", f"train={data}", "--hp", "mode=sleep"]
    arguments += ["--output", str(tmp_path / "out"), "--env", f"PID_FILE={tmp_path / 'pids'}"]
    env = {**os.environ, "BATCHFORM_HOME": str(home)}
    process = subprocess.Popen(
        cli_command(*arguments), env=env, stderr=subprocess.PIPE, start_new_session=True
    )
    pids = pids_from(tmp_path / "pids")
    os.kill(process.pid, signal.SIGINT)  # the CLI alone, as a terminal's Ctrl-C would
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr.decode()
    assert "Stopped" in stderr.decode()
    assert_gone(pids)


@pytest.mark.parametrize(
    "image", ["builtin:pca", "174872318107.dkr.ecr.us-west-2.amazonaws.com/pca:1"]
)
def test_builtin_pca_trains_on_a_small_csv(tmp_path: Path, image: str) -> None:
    (tmp_path / "pca").mkdir()
    rows = "".join(f"{i % 3},{i % 5},{i % 7},{(i * i) % 11}\n" for i in range(200))
    (tmp_path / "pca" / "train.csv").write_text(rows)
    hyperparameters = {"feature_dim": "4", "num_components": "2", "mini_batch_size": "50"}
    body = request_body(str(tmp_path / "pca"), str(tmp_path / "out"), hyperparameters)
    body["AlgorithmSpecification"]["TrainingImage"] = image
    body["InputDataConfig"][0]["ContentType"] = "text/csv;label_size=0"
    run, outcome = run_job(body)
    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    tarball = Path(outcome.model_artifacts_url or "").read_bytes()
    assert members(tarball), "model.tar.gz holds the PCA model"
    assert "builtin:pca" in run.log_path.read_text()
