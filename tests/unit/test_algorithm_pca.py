"""Built-in PCA: trained through the training contract, compared with numpy's SVD.

Also the training-data path both built-in algorithms share: the vector CSV parser, the
streaming reader and the failure reasons a job gets for bad configuration or data.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from batchform.algorithms import data, pca, training
from batchform.algorithms.csvblock import parse_csv
from batchform.algorithms.pca import PCAModel
from batchform.errors import BatchformError, InputFormatError

DIGITS = load_digits().data  # 1797 rows x 64 features, integers 0..16
K = 10
REGULAR_TOLERANCE = 1e-9  # exact arithmetic but for rounding
RANDOMIZED_TOLERANCE = 5e-3  # subspace iteration; measured ~6e-4 on digits


def write_csv(path: Path, rows: np.ndarray, fmt: str = "%g") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, rows, delimiter=",", fmt=fmt)


def pca_job(base: Path, **hyperparameters: str) -> Path:
    """A workspace for PCA on digits with 10 components; returns the train folder."""
    settings = {"feature_dim": "64", "num_components": str(K), "mini_batch_size": "100"}
    data_dir = training.write_workspace(
        base, {**settings, **hyperparameters}, {"train": "text/csv"}
    )
    return data_dir / "train"


def failure(base: Path) -> str:
    return (base / "output" / "failure").read_text()


def train_failing(base: Path) -> str:
    with pytest.raises(BatchformError):
        pca.train(base)
    return failure(base)


@pytest.fixture
def streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small reads and one scatter update a mini-batch, so that the data really streams:
    lines cut across read blocks, many updates, batches spanning files."""
    monkeypatch.setattr(data, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(pca, "MIN_SCATTER_ROWS", 1)


def svd_projections(rows: np.ndarray, subtract_mean: bool) -> tuple[np.ndarray, np.ndarray]:
    """numpy's answer, in SageMaker's order: components by ascending singular value."""
    centred = rows - rows.mean(axis=0) if subtract_mean else rows
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[:K].T)[:, ::-1], singular[:K][::-1]


def assert_same_up_to_sign(got: np.ndarray, expected: np.ndarray, tolerance: float) -> None:
    signs = np.sign(np.sum(got * expected, axis=0))
    error = np.abs(got * signs - expected).max() / np.abs(expected).max()
    assert error < tolerance


# --- projections --------------------------------------------------------------------------


@pytest.mark.parametrize("subtract_mean", [True, False])
@pytest.mark.parametrize(
    ("mode", "tolerance"), [("regular", REGULAR_TOLERANCE), ("randomized", RANDOMIZED_TOLERANCE)]
)
@pytest.mark.usefixtures("streaming")
def test_projections_equal_numpy_svd_up_to_sign(
    tmp_path: Path, mode: str, tolerance: float, subtract_mean: bool
) -> None:
    train_dir = pca_job(tmp_path, algorithm_mode=mode, subtract_mean=str(subtract_mean))
    for part, rows in enumerate(np.array_split(DIGITS, 3)):  # sorted files, read in order
        write_csv(train_dir / f"part-{part}.csv", rows)

    pca.train(tmp_path)

    model = PCAModel.load(tmp_path / "model")
    expected, singular = svd_projections(DIGITS, subtract_mean)
    assert_same_up_to_sign(model.project(DIGITS), expected, tolerance)
    np.testing.assert_allclose(model.s, singular, rtol=tolerance)
    assert np.all(np.diff(model.s) >= 0)  # ascending, as SageMaker's model lists them


def test_model_records_what_it_was_trained_with(tmp_path: Path) -> None:
    write_csv(pca_job(tmp_path, subtract_mean="false") / "digits.csv", DIGITS)
    pca.train(tmp_path)
    meta = json.loads((tmp_path / "model" / "model_algo-1.json").read_text())
    assert meta["algorithm"] == "pca"
    assert meta["rows"] == len(DIGITS)
    assert meta["hyperparameters"]["subtract_mean"] == "false"
    with np.load(tmp_path / "model" / "model_algo-1.npz") as arrays:
        assert arrays["v"].shape == (64, K)
        assert not arrays["mean"].any()  # nothing is subtracted without subtract_mean


def test_label_columns_are_dropped(tmp_path: Path) -> None:
    write_csv(pca_job(tmp_path / "plain") / "digits.csv", DIGITS)
    labelled = np.column_stack([np.arange(len(DIGITS)) % 10, DIGITS])
    base = tmp_path / "labelled"
    settings = {"feature_dim": "64", "num_components": str(K), "mini_batch_size": "100"}
    data_dir = training.write_workspace(base, settings, {"train": "text/csv;label_size=1"})
    write_csv(data_dir / "train" / "digits.csv", labelled)

    pca.train(tmp_path / "plain")
    pca.train(base)

    plain, with_labels = (PCAModel.load(b / "model") for b in (tmp_path / "plain", base))
    np.testing.assert_allclose(with_labels.project(DIGITS), plain.project(DIGITS), atol=1e-9)


def test_data_far_from_the_origin_keeps_its_precision(tmp_path: Path) -> None:
    # Σxᵀx - n·meanᵀmean loses digits to cancellation at an offset of 1e6 (~1e-5 unshifted).
    shifted = DIGITS + 1e6
    write_csv(pca_job(tmp_path) / "shifted.csv", shifted, fmt="%.10g")
    pca.train(tmp_path)
    expected, _ = svd_projections(shifted, subtract_mean=True)
    model = PCAModel.load(tmp_path / "model")
    assert_same_up_to_sign(model.project(shifted), expected, 1e-6)


def test_recordio_protobuf_input_trains_the_same_model(tmp_path: Path) -> None:
    pytest.importorskip("batchform.records.protobuf")
    common = pytest.importorskip("sagemaker.amazon.common")
    write_csv(pca_job(tmp_path / "csv") / "digits.csv", DIGITS)
    base = tmp_path / "protobuf"
    settings = {"feature_dim": "64", "num_components": str(K), "mini_batch_size": "100"}
    data_dir = training.write_workspace(base, settings, {"train": data.PROTOBUF})
    with (data_dir / "train" / "digits.rec").open("wb") as out:
        common.write_numpy_to_dense_tensor(out, DIGITS.astype(np.float32))

    pca.train(tmp_path / "csv")
    pca.train(base)

    from_csv, from_protobuf = (PCAModel.load(b / "model") for b in (tmp_path / "csv", base))
    np.testing.assert_allclose(from_protobuf.project(DIGITS), from_csv.project(DIGITS), atol=1e-6)


def test_main_reads_the_base_dir_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(pca_job(tmp_path) / "digits.csv", DIGITS)
    monkeypatch.setenv(training.BASE_DIR_ENV, str(tmp_path))
    assert training.main("pca", pca.train, ["train"]) == 0
    assert (tmp_path / "model" / "model_algo-1.npz").is_file()
    assert training.main("pca", pca.train, ["serve"]) == 2  # usage


def test_main_exits_nonzero_and_leaves_the_failure_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pca_job(tmp_path, num_components="0")
    monkeypatch.setenv(training.BASE_DIR_ENV, str(tmp_path))
    assert training.main("pca", pca.train, ["train"]) == 1
    assert failure(tmp_path).startswith("ClientError: ")


def test_the_runner_finds_each_algorithm() -> None:
    from batchform import algorithms

    assert algorithms.trainer("pca") is pca.train
    assert algorithms.training_module("kmeans") == "batchform.algorithms.kmeans"
    assert algorithms.SERVING_PROGRAM.is_file()
    with pytest.raises(KeyError, match="known: pca, kmeans"):
        algorithms.trainer("xgboost")


# --- hyperparameter errors ----------------------------------------------------------------

REQUIRED = {"feature_dim": "64", "num_components": "10", "mini_batch_size": "100"}


@pytest.mark.parametrize(
    ("hyperparameters", "expected"),
    [
        ({"num_components": "10", "mini_batch_size": "100"}, ["feature_dim is required"]),
        ({"feature_dim": "64", "mini_batch_size": "100"}, ["num_components is required"]),
        ({"feature_dim": "64", "num_components": "10"}, ["mini_batch_size is required"]),
        ({}, ["feature_dim is required", "num_components is required", "mini_batch_size"]),
        ({**REQUIRED, "feature_dim": "0"}, ["feature_dim='0'", "a positive integer"]),
        ({**REQUIRED, "num_components": "ten"}, ["num_components='ten'", "positive integer"]),
        ({**REQUIRED, "mini_batch_size": "-5"}, ["mini_batch_size='-5'"]),
        (
            {**REQUIRED, "algorithm_mode": "fast"},
            ["algorithm_mode='fast'", "regular or randomized"],
        ),
        ({**REQUIRED, "subtract_mean": "yes"}, ["subtract_mean='yes'", "true or false"]),
        ({**REQUIRED, "extra_components": "-2"}, ["extra_components='-2'", "-1 or an integer"]),
        ({**REQUIRED, "num_components": "65"}, ["num_components=65 exceeds feature_dim=64"]),
        ({**REQUIRED, "k": "3"}, ["k is not a hyperparameter", "supported: feature_dim"]),
    ],
)
def test_bad_hyperparameters_fail_the_job_naming_each(
    tmp_path: Path, hyperparameters: dict[str, str], expected: list[str]
) -> None:
    training.write_workspace(tmp_path, hyperparameters, {"train": "text/csv"})
    write_csv(tmp_path / "input" / "data" / "train" / "digits.csv", DIGITS)
    reason = train_failing(tmp_path)
    assert reason.startswith("ClientError: Invalid hyperparameters for pca: ")
    for text in expected:
        assert text in reason


def test_sagemaker_sdk_spellings_and_internal_settings_are_accepted(tmp_path: Path) -> None:
    # The SDK writes str(True); tuning jobs add _tuning_objective_metric.
    settings = {"subtract_mean": "True", "extra_components": "-1", "_kvstore": "dist_sync"}
    write_csv(pca_job(tmp_path, algorithm_mode="randomized", **settings) / "d.csv", DIGITS)
    pca.train(tmp_path)
    assert PCAModel.load(tmp_path / "model").v.shape == (64, K)


# --- data errors --------------------------------------------------------------------------


def test_a_row_with_the_wrong_width_names_file_line_and_feature_dim(tmp_path: Path) -> None:
    train_dir = pca_job(tmp_path)
    write_csv(train_dir / "a.csv", DIGITS[:50])
    text = (train_dir / "a.csv").read_text().splitlines()
    text[16] = text[16].rsplit(",", 1)[0]  # line 17 loses its last column
    (train_dir / "a.csv").write_text("\n".join(text) + "\n")
    reason = train_failing(tmp_path)
    assert reason == (
        "ClientError: train/a.csv, line 17: found 63 columns, expected 64 (feature_dim=64)"
    )


def test_the_line_number_counts_across_read_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "CHUNK_BYTES", 1000)
    train_dir = pca_job(tmp_path)
    write_csv(train_dir / "a.csv", DIGITS[:300])
    with (train_dir / "a.csv").open("a") as out:
        out.write("1,2,x\n")
    assert "train/a.csv, line 301: found 3 columns" in train_failing(tmp_path)


def test_a_field_that_is_not_a_number_is_named(tmp_path: Path) -> None:
    rows = "\n".join(",".join(["1"] * 64) for _ in range(3)).replace("1", "one", 1)
    (pca_job(tmp_path) / "a.csv").write_text(rows + "\n")
    assert "train/a.csv, line 1: column 1 is 'one', not a finite number" in train_failing(tmp_path)


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("no channel", "No training data: the job has no 'train' channel"),
        ("no files", "No training data: channel 'train' has no files"),
        ("empty file", "No training data: channel 'train' holds no rows"),
    ],
)
def test_no_training_data(tmp_path: Path, layout: str, expected: str) -> None:
    channels = {} if layout == "no channel" else {"train": "text/csv"}
    training.write_workspace(tmp_path, REQUIRED, channels)
    if layout == "empty file":
        (tmp_path / "input" / "data" / "train" / "empty.csv").write_text("\n")
    assert expected in train_failing(tmp_path)


def test_unsupported_content_type_and_channel_are_refused(tmp_path: Path) -> None:
    training.write_workspace(tmp_path, REQUIRED, {"train": "application/json"})
    assert "ContentType 'application/json' is not supported" in train_failing(tmp_path)
    training.write_workspace(tmp_path, REQUIRED, {"train": "text/csv", "extra": "text/csv"})
    assert "channel(s) extra are not supported (supported: train, test)" in train_failing(tmp_path)


def test_hidden_files_are_not_training_data(tmp_path: Path) -> None:
    train_dir = pca_job(tmp_path)
    write_csv(train_dir / "nested" / "digits.csv", DIGITS)
    (train_dir / ".DS_Store").write_bytes(b"\x00\x01binary")
    pca.train(tmp_path)
    assert json.loads((tmp_path / "model" / "model_algo-1.json").read_text())["rows"] == 1797


# --- the CSV reader -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt", ["%d", "%.3f", "%.10g", "%.6e", "%.17g"], ids=["int", "fixed", "g", "exp", "long"]
)
def test_csv_values_are_exactly_what_loadtxt_reads(fmt: str) -> None:
    rng = np.random.default_rng(7)
    rows = rng.normal(scale=1000, size=(200, 30))
    buffer = io.StringIO()
    np.savetxt(buffer, rows, delimiter=",", fmt=fmt)
    text = buffer.getvalue().encode()
    expected = np.loadtxt(io.BytesIO(text), delimiter=",")
    np.testing.assert_array_equal(parse_csv(text, 30, where="x"), expected)


def test_csv_edge_forms() -> None:
    text = b"-0,.5,5.,-1.25\r\n\n007,1,2,3"  # CRLF, a blank line, no final newline
    values = parse_csv(text, 4, where="x")
    np.testing.assert_array_equal(values, [[-0.0, 0.5, 5.0, -1.25], [7, 1, 2, 3]])
    assert np.signbit(values[0, 0])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"1,2\n3\n", "line 2: found 1 columns, expected 2"),
        (b"1,2\n3,\n", "line 2: column 2 is '', not a finite number"),
        (b"1,2\n3,nan\n", "line 2: column 2 is 'nan', not a finite number"),
        (b"1,2\n\n1-2,3\n", "line 3: column 1 is '1-2', not a finite number"),
        (b"1,2,3\n", "line 1: found 3 columns, expected 2"),
    ],
)
def test_csv_errors_name_the_line(text: bytes, problem: str) -> None:
    with pytest.raises(InputFormatError, match=problem):
        parse_csv(text, 2, where="f.csv", first_line=1)


def test_rows_regroup_into_exact_mini_batches() -> None:
    blocks = [np.full((n, 2), n, dtype=float) for n in (3, 1, 5, 0, 4)]
    sizes = [len(batch) for batch in data.rebatch(blocks, 4)]
    assert sizes == [4, 4, 4, 1]
    joined = np.concatenate(list(data.rebatch(blocks, 4)))
    np.testing.assert_array_equal(joined, np.concatenate(blocks))


def test_line_blocks_cut_only_at_newlines() -> None:
    text = b"".join(b"%d,%d\n" % (i, i * i) for i in range(1000))
    blocks = list(data.line_blocks(io.BytesIO(text), size=64))
    assert b"".join(block for block, _ in blocks) == text
    assert all(block.endswith(b"\n") for block, _ in blocks)
    assert [line for _, line in blocks][:2] == [1, 1 + blocks[0][0].count(b"\n")]
