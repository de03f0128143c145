"""The bring-your-own DBSCAN container in examples/dbscan_container, run for real: its
`train` on planted clusters, its `serve` over HTTP, both through batchform, and the seed
notebook's PCA-then-DBSCAN pipeline end to end."""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.cluster import DBSCAN
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors

from batchform.runtimes.workspace import free_port

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = ROOT / "examples" / "dbscan_container"
# Four well-separated clusters in four dimensions.
CENTERS = np.array([[0, 0, 0, 0], [8, 8, 0, 0], [0, 8, 8, 0], [8, 0, 8, 8]], dtype=float)
MIN_PTS = 5


def environment(**extra: str) -> dict[str, str]:
    """Our environment without any SageMaker variables, with this interpreter's folder
    first on PATH: the scripts' `#!/usr/bin/env python3` must find numpy and sklearn."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SM_", "SAGEMAKER_"))
    }
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**inherited, "PATH": path, **extra}


def blobs(samples: int, seed: int) -> tuple[Any, Any]:
    return make_blobs(samples, centers=CENTERS, cluster_std=0.6, random_state=seed)


def csv_text(matrix: Any) -> str:
    return "".join(",".join(f"{value:.6f}" for value in row) + "\n" for row in matrix)


def jsonl_text(matrix: Any) -> str:
    return "".join(json.dumps({"projection": [float(v) for v in row]}) + "\n" for row in matrix)


def envelope_line(matrix: Any) -> str:
    """One line as PCA's default application/json answer to a MultiRecord batch."""
    records = [{"projection": [float(v) for v in row]} for row in matrix]
    return json.dumps({"projections": records}) + "\n"


def prepare(base: Path, hyperparameters: dict[str, str], files: dict[str, str]) -> None:
    """A training workspace: hyperparameters.json and the `train` channel's files."""
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    channel = base / "input" / "data" / "train"
    for name, content in files.items():
        (channel / name).parent.mkdir(parents=True, exist_ok=True)
        (channel / name).write_text(content)


def run_train(base: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONTAINER / "train")],
        env=environment(SAGEMAKER_BASE_DIR=str(base), **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass
class Trained:
    base: Path
    points: Any  # in the order train reads them (files sorted by name)
    truth: Any
    stdout: str

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    def params(self) -> dict[str, Any]:
        return json.loads((self.model_dir / "dbscan.json").read_text())

    def labels(self) -> tuple[Any, Any]:
        """What sklearn's DBSCAN makes of the training points with the model's settings:
        the labels and which points are core."""
        params = self.params()
        fitted = DBSCAN(eps=params["eps"], min_samples=params["minPts"]).fit(self.points)
        core = np.zeros(len(self.points), dtype=bool)
        core[fitted.core_sample_indices_] = True
        return fitted.labels_, core


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """`train` on 400 planted points in four formats, with metadata files to skip."""
    points, truth = blobs(400, seed=7)
    points = points.round(6)  # what train reads back from the CSV
    base = tmp_path_factory.mktemp("dbscan") / "opt-ml"
    files = {
        "a.csv": csv_text(points[:150]),
        "b.csv.out": jsonl_text(points[150:250]),
        "c/pca.out": envelope_line(points[250:330]) + envelope_line(points[330:]),
        ".hidden.csv": "not,numbers\n",
        "_batchform/job_summary.json": json.dumps({"job": "pca", "status": "Completed"}),
    }
    prepare(base, {"minPts": str(MIN_PTS)}, files)
    result = run_train(base)
    assert result.returncode == 0, result.stderr
    return Trained(base, points, truth, result.stdout)


def test_train_finds_the_planted_clusters(trained: Trained) -> None:
    params = trained.params()
    labels, _ = trained.labels()

    assert params["minPts"] == MIN_PTS and params["dimension"] == 4
    assert params["trainingRows"] == 400
    assert params["clusters"] == 4
    assert params["noisePoints"] == int((labels == -1).sum())
    assert "dbscan: 4 clusters" in trained.stdout
    assert f"{params['noisePoints']} noise points" in trained.stdout
    assert adjusted_rand_score(trained.truth, labels) > 0.9
    found = labels != -1
    assert adjusted_rand_score(trained.truth[found], labels[found]) == 1.0


def test_train_chooses_eps_from_the_k_distance_curve(trained: Trained) -> None:
    # The distance to the minPts-th neighbour, the point itself included; its 90th percentile.
    neighbours = NearestNeighbors(n_neighbors=MIN_PTS).fit(trained.points)
    distances, _ = neighbours.kneighbors(trained.points)

    assert trained.params()["eps"] == pytest.approx(np.percentile(distances[:, -1], 90))
    assert "90th percentile" in trained.params()["epsRule"]


def test_train_keeps_the_core_samples_and_their_labels(trained: Trained) -> None:
    labels, core = trained.labels()
    with np.load(trained.model_dir / "dbscan.npz") as arrays:
        np.testing.assert_allclose(arrays["core_samples"], trained.points[core])
        np.testing.assert_array_equal(arrays["core_labels"], labels[core])


def test_train_uses_a_given_eps(tmp_path: Path) -> None:
    points, _ = blobs(100, seed=3)
    prepare(tmp_path, {"minPts": "4", "eps": "1.25"}, {"points.csv": csv_text(points)})

    result = run_train(tmp_path)

    assert result.returncode == 0, result.stderr
    params = json.loads((tmp_path / "model" / "dbscan.json").read_text())
    assert (params["eps"], params["minPts"], params["epsRule"]) == (1.25, 4, "given")


@pytest.mark.parametrize(
    ("hyperparameters", "files", "reason"),
    [
        ({}, {"a.csv": "1,2\n3,oops\n"}, "ClientError: a.csv, line 2: '3,oops' is not"),
        ({}, {"a.csv": "1,2\n3\n"}, "ClientError: a.csv, line 2: 1 values, but earlier rows"),
        ({}, {"a.json": '{"projection": [1, "x"]}\n'}, "ClientError: a.json, line 1: 'proj"),
        ({}, {"a.json": "{broken\n"}, "ClientError: a.json, line 1: not JSON"),
        ({}, {"a.csv": "1,2\n", "b.csv": "1,2,3\n"}, "ClientError: b.csv: rows have 3 values"),
        ({}, {"a.csv": "1,2\n3,4\n"}, "ClientError: 2 rows are fewer than minPts=5"),
        ({}, {"_SUCCESS": ""}, "ClientError: channel 'train' has no data files"),
        ({}, {"a.csv": "\n\n"}, "ClientError: channel 'train' has no rows"),
        ({"minPts": "five"}, {"a.csv": "1,2\n"}, "ClientError: hyperparameter minPts must be"),
        ({"eps": "-1"}, {"a.csv": "1,2\n"}, "ClientError: hyperparameter eps must be positive"),
    ],
)
def test_a_failing_train_writes_output_failure(
    tmp_path: Path, hyperparameters: dict[str, str], files: dict[str, str], reason: str
) -> None:
    prepare(tmp_path, hyperparameters, files)

    result = run_train(tmp_path)

    assert result.returncode == 1
    failure = (tmp_path / "output" / "failure").read_text()
    assert failure.startswith(reason), failure
    assert reason in result.stderr
    assert not (tmp_path / "model" / "dbscan.json").exists()


def test_train_without_a_channel_fails(tmp_path: Path) -> None:
    prepare(tmp_path, {}, {})

    result = run_train(tmp_path)

    assert result.returncode == 1
    assert "ClientError: no 'train' channel" in (tmp_path / "output" / "failure").read_text()


def test_train_reads_a_pipe_mode_channel(tmp_path: Path) -> None:
    # Pipe mode hands the channel over as input/data/train_0; a file reads the same way.
    points, _ = blobs(60, seed=5)
    prepare(tmp_path, {}, {})
    (tmp_path / "input" / "data").mkdir()
    (tmp_path / "input" / "data" / "train_0").write_text(csv_text(points))

    result = run_train(tmp_path)

    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "model" / "dbscan.json").read_text())["trainingRows"] == 60


def without_sklearn(tmp_path: Path) -> str:
    """A PATH whose `python3` is this interpreter without site-packages (`-S`): what
    `#!/usr/bin/env python3` finds when batchform runs from an unactivated virtualenv."""
    folder = tmp_path / "bin"
    folder.mkdir()
    python3 = folder / "python3"
    python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    python3.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


def test_without_sklearn_the_scripts_name_the_interpreter(tmp_path: Path, trained: Trained) -> None:
    prepare(tmp_path / "base", {}, {"a.csv": "1,2\n"})
    path = without_sklearn(tmp_path)

    result = run_train(tmp_path / "base", PATH=path)
    served = subprocess.run(
        [str(CONTAINER / "serve")],
        env=environment(PATH=path, SM_MODEL_DIR=str(trained.model_dir)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    failure = (tmp_path / "base" / "output" / "failure").read_text()
    assert result.returncode == 1
    assert failure.startswith("AlgorithmError: numpy is not importable by")
    assert "#!/usr/bin/env python3" in failure
    assert served.returncode == 1
    assert "dbscan serve: numpy is not importable by" in served.stderr


# serve ---------------------------------------------------------------------------------


@dataclass
class Server:
    port: int
    process: subprocess.Popen[str]

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)


def request(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    return response.status, dict(response.getheaders()), data


def start_serve(model_dir: Path, **extra: str) -> Server:
    port = free_port()
    variables = {"SM_MODEL_DIR": str(model_dir), "SAGEMAKER_BIND_TO_PORT": str(port), **extra}
    process = subprocess.Popen(
        [str(CONTAINER / "serve")],
        env=environment(**variables),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = Server(port, process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, stderr = process.communicate()
            raise AssertionError(f"serve exited with {process.returncode}: {stderr}")
        try:
            status, _, _ = request(server.connection(), "GET", "/ping")
            if status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("serve did not answer /ping within 60 s")


@pytest.fixture(scope="module")
def server(trained: Trained) -> Iterator[Server]:
    started = start_serve(trained.model_dir)
    yield started
    started.process.terminate()
    started.process.communicate(timeout=30)


def csv_clusters(data: bytes) -> Any:
    return np.array([int(line) for line in data.decode().splitlines()])


def test_serve_answers_ping_and_execution_parameters(server: Server) -> None:
    connection = server.connection()

    ping = request(connection, "GET", "/ping")
    parameters = request(connection, "GET", "/execution-parameters")
    missing = request(connection, "GET", "/nothing")

    assert (ping[0], ping[1]["Content-Length"], ping[2]) == (200, "0", b"")
    assert parameters[0] == 200
    assert json.loads(parameters[2]) == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }
    assert missing[0] == 404


def test_serve_assigns_training_points_as_dbscan_did(server: Server, trained: Trained) -> None:
    labels, core = trained.labels()
    connection = server.connection()

    status, headers, data = request(
        connection, "POST", "/invocations", csv_text(trained.points), {"Content-Type": "text/csv"}
    )

    assert status == 200 and headers["Content-Type"] == "text/csv"
    clusters = csv_clusters(data)
    assert len(clusters) == len(trained.points)
    np.testing.assert_array_equal(clusters[core], labels[core])  # core points: their own
    assert (clusters == labels).mean() >= 0.99  # border points: a cluster within eps


def test_serve_clusters_held_out_points_in_csv_and_json_lines(server: Server) -> None:
    points, truth = blobs(160, seed=11)
    connection = server.connection()

    _, _, csv_answer = request(
        connection, "POST", "/invocations", csv_text(points), {"Content-Type": "text/csv"}
    )
    status, headers, jsonl_answer = request(
        connection,
        "POST",
        "/invocations",
        jsonl_text(points),
        {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"},
    )

    clusters = csv_clusters(csv_answer)
    assert len(clusters) == 160
    assert adjusted_rand_score(truth, clusters) > 0.9
    assert status == 200 and headers["Content-Type"] == "application/jsonlines"
    records = [json.loads(line) for line in jsonl_answer.decode().splitlines()]
    assert records == [{"cluster": int(cluster)} for cluster in clusters]


def test_serve_answers_a_pca_batch_line_on_one_line(server: Server) -> None:
    # One answer line per input line, so records stay aligned (as JoinSource needs).
    points, _ = blobs(31, seed=13)
    connection = server.connection()
    jsonl = {"Content-Type": "application/jsonlines"}
    body = envelope_line(points[:10]) + jsonl_text(points[10:11]) + envelope_line(points[11:])

    _, _, per_row = request(connection, "POST", "/invocations", csv_text(points))
    as_csv = request(connection, "POST", "/invocations", body, jsonl)
    as_jsonl = request(
        connection, "POST", "/invocations", body, {**jsonl, "Accept": "application/jsonlines"}
    )

    ids = [int(line) for line in per_row.splitlines()]
    first, single, rest = ids[:10], ids[10], ids[11:]
    assert as_csv[0] == 200
    assert as_csv[2].decode().splitlines() == [
        ",".join(map(str, first)),
        str(single),
        ",".join(map(str, rest)),
    ]
    assert [json.loads(line) for line in as_jsonl[2].splitlines()] == [
        {"clusters": first},
        {"cluster": single},
        {"clusters": rest},
    ]


def test_serve_rejects_what_it_cannot_read_and_keeps_the_connection(server: Server) -> None:
    connection = server.connection()
    csv = {"Content-Type": "text/csv"}

    fine = request(connection, "POST", "/invocations", "0,0,0,0\n", csv)
    socket = connection.sock
    bad_row = request(connection, "POST", "/invocations", "1,2,3,4\n1,x,3,4\n", csv)
    wrong_width = request(connection, "POST", "/invocations", "1,2,3\n", csv)
    bad_type = request(connection, "POST", "/invocations", "1", {"Content-Type": "image/png"})
    bad_accept = request(
        connection, "POST", "/invocations", "1,2,3,4\n", {**csv, "Accept": "application/xml"}
    )
    fine_again = request(connection, "POST", "/invocations", "0,0,0,0\n", csv)

    assert bad_row[0] == 400 and b"line 2: '1,x,3,4' is not a CSV row" in bad_row[2]
    assert wrong_width[0] == 400 and b"the model was trained on 4" in wrong_width[2]
    assert bad_type[0] == 415
    assert bad_accept[0] == 406
    assert fine[0] == 200 and int(fine[2]) >= 0  # the centre of a planted cluster
    assert fine_again[2] == fine[2]
    assert connection.sock is socket  # still the one keep-alive connection


def test_serve_reads_chunked_bodies_and_empty_ones(server: Server) -> None:
    connection = server.connection()
    chunks = iter([b"0,0,0,0\n8,8,", b"0,0\n"])

    connection.request(
        "POST",
        "/invocations",
        body=chunks,
        headers={"Content-Type": "text/csv"},
        encode_chunked=True,
    )
    chunked = connection.getresponse()
    chunked_body = chunked.read()
    empty = request(connection, "POST", "/invocations", b"", {"Content-Type": "text/csv"})
    plain = request(connection, "POST", "/invocations", b"0,0,0,0\n8,8,0,0\n")

    assert (chunked.status, chunked_body) == (200, plain[2])
    assert len(set(csv_clusters(chunked_body))) == 2  # two planted centres, two clusters
    assert (empty[0], empty[2]) == (200, b"")


def test_serve_that_cannot_load_a_model_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(CONTAINER / "serve")],
        env=environment(SM_MODEL_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert f"cannot load the model from {tmp_path}: no dbscan.json" in result.stderr


# through batchform ---------------------------------------------------------------------


def model_tarball(model_dir: Path, target: Path) -> Path:
    """model.tar.gz as a training job makes it: model/'s files at the top level."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(model_dir.iterdir()):
            archive.add(path, arcname=path.name)
    target.write_bytes(buffer.getvalue())
    return target


def batchform(home: Path, *arguments: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchform.cli", *arguments],
        env=environment(BATCHFORM_HOME=str(home), COLUMNS="1000"),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def batchform_train(home: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    # `batchform train`, by its module: the command is not in `batchform`'s group yet.
    entry = "from batchform.cli_train import train; train()"
    return subprocess.run(
        [sys.executable, "-c", entry, *arguments],
        env=environment(BATCHFORM_HOME=str(home), COLUMNS="1000"),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def transform_flags(model: str, model_data: Path, source: Path, output: Path) -> list[str]:
    return [
        "transform", "--model", model, "--model-data", str(model_data),
        "--input", str(source), "--output", str(output), "--name", "dbscan",
        "--content-type", "text/csv", "--split-type", "Line",
        "--strategy", "MultiRecord", "--assemble-with", "Line",
    ]  # fmt: skip


def test_batchform_transform_clusters_held_out_points(tmp_path: Path, trained: Trained) -> None:
    points, truth = blobs(500, seed=17)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "held-out.csv").write_text(csv_text(points))
    tarball = model_tarball(trained.model_dir, tmp_path / "model.tar.gz")
    flags = transform_flags(str(CONTAINER), tarball, tmp_path / "in", tmp_path / "out")

    result = batchform(tmp_path / "home", *flags, "--max-payload", "1")

    assert result.returncode == 0, result.stderr
    clusters = csv_clusters((tmp_path / "out" / "held-out.csv.out").read_bytes())
    assert len(clusters) == 500
    assert adjusted_rand_score(truth, clusters) > 0.9
    log = (tmp_path / "home" / "jobs" / "dbscan" / "log").read_text()
    assert "dbscan serve: 4 clusters" in log


@pytest.mark.parametrize(
    ("content_type", "sample"),
    [
        ("text/csv", csv_text),
        ("application/jsonlines", lambda points: envelope_line(points[:20]) + jsonl_text(points)),
    ],
    ids=["csv", "pca-jsonlines"],
)
def test_batchform_check_model_passes(
    tmp_path: Path, trained: Trained, content_type: str, sample: Any
) -> None:
    points, _ = blobs(40, seed=23)
    (tmp_path / "sample").write_text(sample(points))
    tarball = model_tarball(trained.model_dir, tmp_path / "model.tar.gz")

    result = batchform(
        tmp_path / "home", "check-model", str(CONTAINER), "--model-data", str(tarball),
        "--sample", str(tmp_path / "sample"), "--content-type", content_type,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: the model honours the contract" in result.stdout + result.stderr


def test_batchform_transform_with_a_relative_model_folder(tmp_path: Path, trained: Trained) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "points.csv").write_text("0,0,0,0\n")
    tarball = model_tarball(trained.model_dir, tmp_path / "model.tar.gz")
    flags = transform_flags("examples/dbscan_container", tarball, tmp_path / "in", tmp_path / "out")

    result = batchform(tmp_path / "home", *flags, cwd=ROOT)

    assert result.returncode == 0, result.stderr


def test_the_seed_pipeline_pca_then_dbscan(tmp_path: Path) -> None:
    """The notebook: built-in PCA trained and batch-transformed, this container trained
    on PCA's transform output folder, then held-out PCA output clustered through it."""
    rng = np.random.default_rng(0)
    latent, truth = blobs(360, seed=19)
    wide = latent @ rng.normal(size=(4, 30)) + rng.normal(scale=0.05, size=(360, 30))
    for name, rows in (("train", wide[:300]), ("test", wide[300:])):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.csv").write_text(csv_text(rows))
    home = tmp_path / "home"
    pca_hps = ["--hp", "feature_dim=30", "--hp", "num_components=4", "--hp", "mini_batch_size=50"]
    pca = batchform_train(
        home, "--image", "builtin:pca", "--channel", f"train={tmp_path / 'train'}",
        "--content-type", "text/csv", *pca_hps, "--output", str(tmp_path / "pca"),
        "--job-name", "pca",
    )  # fmt: skip
    assert pca.returncode == 0, pca.stderr
    pca_model = tmp_path / "pca" / "pca" / "output" / "model.tar.gz"
    for name in ("train", "test"):
        projected = batchform(
            home, "transform", "--model", "builtin:pca", "--model-data", str(pca_model),
            "--input", str(tmp_path / name), "--output", str(tmp_path / f"pca-{name}"),
            "--content-type", "text/csv", "--split-type", "Line",
            "--strategy", "MultiRecord", "--assemble-with", "Line",
        )  # fmt: skip
        assert projected.returncode == 0, projected.stderr

    # The whole output folder, _batchform/job_summary.json included, as the notebook does.
    dbscan = batchform_train(
        home, "--image", str(CONTAINER), "--channel", f"train={tmp_path / 'pca-train'}",
        "--hp", "minPts=5", "--output", str(tmp_path / "dbscan"), "--job-name", "dbscan",
    )  # fmt: skip
    assert dbscan.returncode == 0, dbscan.stderr
    clustered = batchform(
        home, "transform", "--model", str(CONTAINER),
        "--model-data", str(tmp_path / "dbscan" / "dbscan" / "output" / "model.tar.gz"),
        "--input", str(tmp_path / "pca-test" / "test.csv.out"),
        "--output", str(tmp_path / "clusters"),
        "--content-type", "application/jsonlines", "--accept", "application/jsonlines",
        "--split-type", "Line", "--strategy", "MultiRecord", "--assemble-with", "Line",
    )  # fmt: skip

    assert clustered.returncode == 0, clustered.stderr
    # PCA answered each MultiRecord batch with one {"projections": [...]} line; DBSCAN
    # answers each such line with one {"clusters": [...]} line.
    answer = (tmp_path / "clusters" / "test.csv.out.out").read_text().splitlines()
    clusters = [cluster for line in answer for cluster in json.loads(line)["clusters"]]
    assert len(clusters) == 60
    assert adjusted_rand_score(truth[300:], clusters) > 0.9
    log = (home / "training" / "dbscan" / "log").read_text()
    assert "dbscan: 300 rows of 4 values" in log
    assert "dbscan: 4 clusters" in log
