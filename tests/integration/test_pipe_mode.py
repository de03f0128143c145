"""Pipe input mode for real: FIFOs fed from local disk and from the S3-compatible test
server, read by bring-your-own containers in Python (tests/models/pipe_train, through
batchform.pipe) and Perl (tests/models/pipe_perl_train, plain file reads), by the
built-in PCA and k-means, through `batchform train` and through the server's API."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from click.testing import CliRunner

from batchform.cli_train import train
from batchform.jobs.lifecycle import JobStatus
from batchform.records import recordio, tfrecord
from batchform.records.protobuf import encode_dense
from batchform.storage import list_inputs
from batchform.training import SecondaryStatus, TrainingOutcome, TrainingRun
from batchform.training import parse_training_request as parse
from batchform.training.streams import epoch_order
from tests.serverproc import running_server

MODELS = Path(__file__).resolve().parents[1] / "models"
PYTHON_TRAIN = MODELS / "pipe_train"
PERL_TRAIN = MODELS / "pipe_perl_train"
S = SecondaryStatus
Dataset = dict[str, dict[str, bytes]]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BATCHFORM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(autouse=True)
def no_feeder_left() -> Iterator[None]:
    """Every test also checks that no feeder or prefetch thread outlives its job."""
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith(("pipe-", "prefetch-"))]
    assert left == []


def csv_rows(seed: int, rows: int) -> bytes:
    values = np.random.default_rng(seed).integers(0, 1000, size=(rows, 3))
    return "".join(f"{a},{b},{c}\n" for a, b, c in values.tolist()).encode()


# About 1.5 MB of training data, more than a FIFO's buffer and a chunk; Gzip validation.
TRAIN = {"a.csv": csv_rows(1, 60000), "c.csv": csv_rows(2, 30000), "deep/b.csv": csv_rows(3, 40000)}
VALIDATION = {"v1.csv": csv_rows(4, 500), "v2.csv": csv_rows(5, 700)}
DATASET: Dataset = {
    "train": TRAIN,
    "validation": {f"{key}.gz": gzip.compress(data) for key, data in VALIDATION.items()},
}


def put_local(root: Path, dataset: Dataset) -> dict[str, str]:
    for channel, objects in dataset.items():
        for key, data in objects.items():
            (root / channel / key).parent.mkdir(parents=True, exist_ok=True)
            (root / channel / key).write_bytes(data)
    return {channel: str(root / channel) for channel in dataset}


def put_s3(s3_client: Any, bucket: str, dataset: Dataset) -> dict[str, str]:
    name = bucket.removeprefix("s3://")
    for channel, objects in dataset.items():
        for key, data in objects.items():
            s3_client.put_object(Bucket=name, Key=f"data/{channel}/{key}", Body=data)
    # As the sagemaker SDK names channels: a "folder" without its trailing '/'.
    return {channel: f"{bucket}/data/{channel}" for channel in dataset}


def stored(request: pytest.FixtureRequest, storage: str, dataset: Dataset) -> dict[str, str]:
    if storage == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        return put_s3(request.getfixturevalue("s3_client"), bucket, dataset)
    return put_local(request.getfixturevalue("tmp_path") / "data", dataset)


def channel(name: str, uri: str, **settings: Any) -> dict[str, Any]:
    source = {"S3DataType": "S3Prefix", "S3Uri": uri}
    return {"ChannelName": name, "DataSource": {"S3DataSource": source}, **settings}


def job(name: str, image: str, uris: dict[str, str], input_mode: str, **hps: str) -> dict[str, Any]:
    gzipped = {"validation": {"CompressionType": "Gzip"}}
    channels = [channel(c, uri, **gzipped.get(c, {})) for c, uri in sorted(uris.items())]
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": input_mode},
        "HyperParameters": hps,
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": str(Path(os.environ["BATCHFORM_HOME"]) / "out")},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }


def run_job(body: dict[str, Any], **options: Any) -> tuple[TrainingRun, TrainingOutcome]:
    run = TrainingRun(parse(body), **options)
    return run, run.run()


def model_of(outcome: TrainingOutcome) -> dict[str, bytes]:
    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    tarball = Path(outcome.model_artifacts_url or "").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        return {
            member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        }


def summary(outcome: TrainingOutcome) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(model_of(outcome)["summary.json"])
    return loaded


def statuses(outcome: TrainingOutcome) -> list[SecondaryStatus]:
    return [entry.status for entry in outcome.secondary_status_transitions]


def sha256_of_lines(data: bytes) -> str:
    return hashlib.sha256(data.removesuffix(b"\n")).hexdigest()


# --- bring-your-own containers: Pipe reads what File copies ------------------------------


@pytest.mark.parametrize("image", [PYTHON_TRAIN, PERL_TRAIN], ids=["python", "perl"])
@pytest.mark.parametrize("storage", ["local", "s3"])
def test_three_epochs_of_two_channels_read_as_in_file_mode(
    request: pytest.FixtureRequest, storage: str, image: Path
) -> None:
    uris = stored(request, storage, DATASET)
    _, file_outcome = run_job(job("file-job", str(image), uris, "File"))
    run, pipe_outcome = run_job(job("pipe-job", str(image), uris, "Pipe"))

    assert statuses(pipe_outcome) == [
        S.STARTING,
        S.DOWNLOADING,
        S.TRAINING,
        S.UPLOADING,
        S.COMPLETED,
    ]
    log = run.log_path.read_text()
    for name in ("train", "validation"):
        assert f"channel {name}: Pipe mode" in log
        assert f"channel {name}: epoch 2 streamed" in log
    if image == PERL_TRAIN:
        assert model_of(pipe_outcome) == model_of(file_outcome)
        return
    piped, copied = summary(pipe_outcome), summary(file_outcome)
    assert piped["epochs"] == copied["epochs"]
    assert piped["modes"] == {"train": "Pipe", "validation": "Pipe"}  # inputdataconfig.json
    # Nothing was copied: when training began, input/data held the epoch-0 FIFOs only.
    assert piped["data"] == {"train_0": "fifo", "validation_0": "fifo"}
    train_bytes = b"".join(TRAIN[key] for key in sorted(TRAIN))
    validation_bytes = b"".join(VALIDATION.values())  # decompressed on the fly
    for epoch in ("0", "1", "2"):
        assert piped["epochs"]["train"][epoch]["sha256"] == sha256_of_lines(train_bytes)
        assert piped["epochs"]["validation"][epoch]["sha256"] == sha256_of_lines(validation_bytes)
        assert piped["epochs"]["train"][epoch]["rows"] == 130000


def records_job(uris: dict[str, str], **settings: Any) -> dict[str, Any]:
    body = job("records-job", str(PYTHON_TRAIN), {}, "Pipe", mode="records", epochs="2")
    body["InputDataConfig"] = [channel("train", uris["train"], **settings)]
    return body


@pytest.mark.parametrize("compression", ["None", "Gzip"])
def test_a_recordio_wrapper_makes_each_object_one_record(tmp_path: Path, compression: str) -> None:
    magic = recordio.encode_record(b"")[:4]
    objects = {
        "a.bin": b"12345",
        "b.bin": magic * 3 + b"xy",
        "c.bin": b"",
        "d.bin": os.urandom(3 << 20),
    }
    pack = gzip.compress if compression == "Gzip" else bytes
    uris = put_local(tmp_path / "data", {"train": {k: pack(v) for k, v in objects.items()}})
    body = records_job(uris, RecordWrapperType="RecordIO", CompressionType=compression)
    body["HyperParameters"]["record_format"] = "RecordIO"
    run, outcome = run_job(body)
    expected = [hashlib.sha256(objects[key]).hexdigest() for key in sorted(objects)]
    assert summary(outcome)["records"] == [expected, expected]
    assert "each object one RecordIO record" in run.log_path.read_text()


def test_tfrecord_files_are_read_record_by_record_with_crcs_checked(tmp_path: Path) -> None:
    records = [os.urandom(size) for size in (0, 1, 100, 70000)]
    files = {"one.tfrecord": records[:2], "two.tfrecord": records[2:]}
    dataset = {"train": {k: b"".join(map(tfrecord.encode_record, v)) for k, v in files.items()}}
    body = records_job(put_local(tmp_path / "data", dataset))
    body["HyperParameters"]["record_format"] = "TFRecord"
    _, outcome = run_job(body)
    expected = [hashlib.sha256(record).hexdigest() for record in records]
    assert summary(outcome)["records"] == [expected, expected]


def test_shuffle_config_orders_the_objects_anew_each_epoch(tmp_path: Path) -> None:
    objects = {f"part-{i}.csv": f"{i}\n".encode() for i in range(8)}
    uris = put_local(tmp_path / "data", {"train": objects})
    body = records_job(uris, ShuffleConfig={"Seed": 7})
    body["HyperParameters"].update(record_format="TextLine", epochs="3")
    _, outcome = run_job(body)
    listed = list_inputs(uris["train"], "S3Prefix")
    orders = [
        [hashlib.sha256(objects[obj.key].strip()).hexdigest() for obj in epoch_order(listed, 7, e)]
        for e in range(3)
    ]
    assert summary(outcome)["records"] == orders
    assert len({tuple(order) for order in orders}) == 3  # every epoch in its own order
    assert sorted(orders[0]) == sorted(orders[1]) == sorted(orders[2])


# --- built-in algorithms ------------------------------------------------------------------


def protobuf_of(data: bytes) -> bytes:
    rows = np.loadtxt(io.BytesIO(data), delimiter=",", ndmin=2)
    return encode_dense(rows.astype(np.float32))


@pytest.mark.parametrize("content_type", ["text/csv", "application/x-recordio-protobuf"])
@pytest.mark.parametrize(
    ("image", "hps"),
    [
        ("builtin:pca", {"num_components": "2", "subtract_mean": "True"}),
        ("builtin:kmeans", {"k": "4", "epochs": "3"}),
    ],
    ids=["pca", "kmeans"],
)
def test_builtin_algorithms_train_the_same_model_in_pipe_mode(
    tmp_path: Path, image: str, hps: dict[str, str], content_type: str
) -> None:
    convert = protobuf_of if content_type != "text/csv" else bytes
    small = {key: convert(b"".join(data.splitlines(True)[:8000])) for key, data in TRAIN.items()}
    uris = put_local(tmp_path / "data", {"train": small})
    models = []
    for mode in ("File", "Pipe"):
        body = job(f"{mode.lower()}-job", image, uris, mode, feature_dim="3", mini_batch_size="500")
        body["HyperParameters"].update(hps)
        body["InputDataConfig"][0]["ContentType"] = content_type
        _, outcome = run_job(body)
        models.append(model_of(outcome))
    assert models[0] == models[1]


# --- faults: every one ends with the feeders stopped and the FIFOs gone -------------------


def fifos_in(run: TrainingRun) -> list[str]:
    """The FIFOs left in a failed job's kept workspace."""
    [workspace] = run.job_dir.glob("workspace-*")
    data = workspace / "input" / "data"
    return [path.name for path in data.iterdir() if stat.S_ISFIFO(path.lstat().st_mode)]


@pytest.fixture
def keep_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHFORM_KEEP_FAILED_WORKSPACE", "1")


@pytest.mark.parametrize("code", [0, 3])
def test_an_algorithm_exiting_mid_epoch_ends_the_feeding(
    tmp_path: Path, keep_failed: None, code: int
) -> None:
    uris = put_local(tmp_path / "data", DATASET)
    body = job("early", str(PYTHON_TRAIN), uris, "Pipe", mode="exit_early", code=str(code))
    run, outcome = run_job(body)
    if code:
        assert outcome.status is JobStatus.FAILED
        assert (outcome.failure_reason or "").endswith("exit code: 3")
        assert fifos_in(run) == []
    else:
        assert outcome.status is JobStatus.COMPLETED


def test_a_reader_closing_mid_epoch_gets_the_next_epoch_whole(tmp_path: Path) -> None:
    # Larger than what the FIFO and the reader's first read take in, so the close is early.
    big = csv_rows(6, 400000)
    uris = put_local(tmp_path / "data", {"train": {"big.csv": big}})
    run, outcome = run_job(job("closes", str(PYTHON_TRAIN), uris, "Pipe", mode="close_early"))
    epochs = summary(outcome)["epochs"]["train"]
    assert sorted(epochs) == ["1", "2"]
    assert epochs["1"]["sha256"] == epochs["2"]["sha256"] == sha256_of_lines(big)
    assert "channel train: epoch 0 closed by the algorithm after" in run.log_path.read_text()


def test_stopping_a_job_whose_reader_stalled_mid_epoch(tmp_path: Path) -> None:
    uris = put_local(tmp_path / "data", DATASET)
    body = job("stalls", str(PYTHON_TRAIN), uris, "Pipe", mode="stall")
    body["Environment"] = {"PID_FILE": str(tmp_path / "pid")}
    run = TrainingRun(parse(body), stop_grace=10)
    outcomes: list[TrainingOutcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(run.run()))
    worker.start()
    pid = wait_for_pid(tmp_path / "pid", worker)
    [workspace] = run.job_dir.glob("workspace-*")
    assert stat.S_ISFIFO((workspace / "input" / "data" / "train_0").stat().st_mode)
    run.stop.set()
    worker.join(60)
    [outcome] = outcomes
    assert (outcome.status, outcome.secondary_status) == (JobStatus.STOPPED, S.STOPPED)
    assert not running(pid)
    assert not workspace.exists()


def wait_for_pid(path: Path, worker: threading.Thread) -> int:
    while worker.is_alive():
        if path.exists() and path.read_text().endswith("\n"):
            return int(path.read_text())
        worker.join(0.05)
    raise AssertionError("the job ended before the algorithm stalled")


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_an_object_gone_mid_stream_fails_the_job_naming_it(
    s3_bucket: str, s3_client: Any, tmp_path: Path, keep_failed: None
) -> None:
    # The first object is larger than what the feeder reads ahead (16 MiB), so the second
    # is opened only once the algorithm reads epoch 1, after it was deleted.
    objects = {"a.bin": os.urandom(28 << 20), "c.csv": TRAIN["c.csv"]}
    uris = put_s3(s3_client, s3_bucket, {"train": objects})
    body = job("vanishes", str(PYTHON_TRAIN), uris, "Pipe", mode="wait")
    ready, go = tmp_path / "ready", tmp_path / "go"
    body["Environment"] = {"READY_FILE": str(ready), "GO_FILE": str(go)}
    run = TrainingRun(parse(body), stop_grace=10)
    outcomes: list[TrainingOutcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(run.run()))
    worker.start()
    while not ready.exists() and worker.is_alive():
        worker.join(0.05)
    # Epoch 0 was read whole; epoch 1 meets the object deleted since the listing.
    s3_client.delete_object(Bucket=s3_bucket.removeprefix("s3://"), Key="data/train/c.csv")
    go.touch()
    worker.join(60)
    [outcome] = outcomes
    assert outcome.status is JobStatus.FAILED
    reason = outcome.failure_reason or ""
    assert reason.startswith(f"ClientError: {s3_bucket}/data/train/c.csv: ")
    assert "(Pipe channel 'train', epoch 1)" in reason
    assert fifos_in(run) == []


def test_corrupt_gzip_mid_stream_fails_the_job_naming_the_object(
    tmp_path: Path, keep_failed: None
) -> None:
    broken = dict(DATASET["validation"])
    broken["v2.csv.gz"] = broken["v2.csv.gz"][:-300]  # cut short: the stream breaks mid-way
    uris = put_local(tmp_path / "data", {"train": TRAIN, "validation": broken})
    run, outcome = run_job(job("corrupt", str(PYTHON_TRAIN), uris, "Pipe"))
    assert outcome.status is JobStatus.FAILED
    reason = outcome.failure_reason or ""
    assert reason.startswith(f"ClientError: {tmp_path / 'data' / 'validation' / 'v2.csv.gz'}: ")
    assert "corrupt gzip data" in reason
    assert fifos_in(run) == []
    # The algorithm never saw an end of file it could take for the end of the data.
    assert "python train: validation epoch 0 read" not in run.log_path.read_text()


def test_an_empty_pipe_channel_fails_before_the_algorithm_starts(tmp_path: Path) -> None:
    uris = put_local(tmp_path / "data", {"train": TRAIN})
    uris["validation"] = str(tmp_path / "nothing-here/")
    _, outcome = run_job(job("empty", str(PYTHON_TRAIN), uris, "Pipe"))
    assert outcome.status is JobStatus.FAILED
    assert (outcome.failure_reason or "").startswith("ClientError: ")
    assert "no objects match prefix" in (outcome.failure_reason or "")
    assert statuses(outcome) == [S.STARTING, S.DOWNLOADING, S.FAILED]


# --- the CLI and the server ---------------------------------------------------------------


def test_cli_trains_builtin_pca_in_pipe_mode_from_s3(
    s3_bucket: str, s3_client: Any, home: Path
) -> None:
    uris = put_s3(s3_client, s3_bucket, {"train": TRAIN})
    arguments = ["--image", "builtin:pca", "--input-mode", "Pipe", "--channel"]
    arguments += [f"train={uris['train']}/", "--content-type", "text/csv", "--hp", "feature_dim=3"]
    arguments += ["--hp", "num_components=2", "--hp", "mini_batch_size=500"]
    arguments += ["--output", f"{s3_bucket}/models", "--job-name", "cli-pipe", "-v"]
    entry = "from batchform.cli_train import train; train()"
    done = subprocess.run(
        [sys.executable, "-c", entry, *arguments], capture_output=True, timeout=120
    )
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    assert "channel train: Pipe mode, 3 object(s)" in stderr
    assert "channel train, epoch 0: first" in stderr  # the algorithm's own log line
    key = "models/cli-pipe/output/model.tar.gz"
    assert s3_client.head_object(Bucket=s3_bucket.removeprefix("s3://"), Key=key)


def test_cli_input_mode_per_channel(tmp_path: Path) -> None:
    uris = put_local(tmp_path / "data", {"train": TRAIN, "validation": VALIDATION})
    arguments = ["--image", str(PYTHON_TRAIN), "--output", str(tmp_path / "out")]
    arguments += ["--job-name", "mixed", "--hp", "epochs=1"]
    for name, uri in uris.items():
        arguments += ["--channel", f"{name}={uri}"]
    unknown = CliRunner().invoke(train, [*arguments, "--input-mode", "test=Pipe"])
    assert unknown.exit_code == 2
    assert "no channel named 'test'" in unknown.output
    arguments += ["--input-mode", "validation=Pipe", "--input-mode", "File"]
    result = CliRunner().invoke(train, arguments)
    assert result.exit_code == 0, result.output
    with tarfile.open(tmp_path / "out" / "mixed" / "output" / "model.tar.gz") as archive:
        loaded = json.load(archive.extractfile("summary.json"))  # type: ignore[arg-type]
    assert loaded["modes"] == {"train": "File", "validation": "Pipe"}
    assert loaded["data"] == {"train": "other", "validation_0": "fifo"}


def test_server_trains_with_pipe_mode_job_wide_and_per_channel(tmp_path: Path) -> None:
    uris = put_local(tmp_path / "data", DATASET)
    pca = job("pca-pipe", "builtin:pca", {"train": uris["train"]}, "Pipe", feature_dim="3")
    pca["HyperParameters"].update(num_components="2", mini_batch_size="500")
    pca["InputDataConfig"][0]["ContentType"] = "text/csv"
    byo = job("byo-mixed", str(PYTHON_TRAIN), uris, "File", epochs="2")
    byo["InputDataConfig"][0]["InputMode"] = "Pipe"  # train; validation stays File
    with running_server(tmp_path / "server-home") as server:
        sm = server.client()
        for body in (pca, byo):
            sm.create_training_job(**body)
        for name in ("pca-pipe", "byo-mixed"):
            sm.get_waiter("training_job_completed_or_stopped").wait(
                TrainingJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
            )
            described = sm.describe_training_job(TrainingJobName=name)
            assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
            transitions = described["SecondaryStatusTransitions"]
            assert [t["Status"] for t in transitions][1:3] == ["Downloading", "Training"]
    assert described["InputDataConfig"][0]["InputMode"] == "Pipe"
    output = Path(described["ModelArtifacts"]["S3ModelArtifacts"])
    with tarfile.open(output) as archive:
        loaded = json.load(archive.extractfile("summary.json"))  # type: ignore[arg-type]
    assert loaded["modes"] == {"train": "Pipe", "validation": "File"}
    assert loaded["data"] == {"train_0": "fifo", "validation": "other"}
