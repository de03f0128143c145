"""Built-in k-means: trained through the training contract, held to scikit-learn's KMeans.

The quality bar is the inertia (sum of squared distances of the data to their nearest
center): SageMaker's web-scale mini-batch k-means with its final Lloyd reduction should
land within a few percent of a full batch k-means with 10 restarts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs

from batchform.algorithms import kmeans, training
from batchform.algorithms.clustering import (
    LloydSettings,
    WebScaleKMeans,
    kmeans_plus_plus,
    lloyd,
    nearest,
)
from batchform.algorithms.kmeans import KMeansModel
from batchform.errors import BatchformError

DIGITS = load_digits().data
BLOBS, _ = make_blobs(n_samples=4000, n_features=12, centers=7, cluster_std=2.0, random_state=3)
INERTIA_TOLERANCE = 0.03  # at most 3% above scikit-learn's KMeans


def kmeans_job(
    base: Path, rows: np.ndarray, k: int, channels: dict[str, str] | None = None, **hp: str
) -> Path:
    settings = {"k": str(k), "feature_dim": str(rows.shape[1]), "mini_batch_size": "300", **hp}
    data_dir = training.write_workspace(base, settings, channels or {"train": "text/csv"})
    for part, block in enumerate(np.array_split(rows, 4)):
        np.savetxt(data_dir / "train" / f"part-{part}.csv", block, delimiter=",", fmt="%.10g")
    return data_dir


def inertia(rows: np.ndarray, centroids: np.ndarray) -> float:
    return float(nearest(rows, centroids)[1].sum())


def sklearn_inertia(rows: np.ndarray, k: int) -> float:
    return float(KMeans(n_clusters=k, n_init=10, random_state=0).fit(rows).inertia_)


def failure(base: Path) -> str:
    with pytest.raises(BatchformError):
        kmeans.train(base)
    return (base / "output" / "failure").read_text()


# --- quality ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "rows", "k"), [("blobs", BLOBS, 7), ("digits", DIGITS, 10)])
@pytest.mark.parametrize("init_method", ["random", "kmeans++"])
def test_inertia_within_a_few_percent_of_sklearn(
    tmp_path: Path, name: str, rows: np.ndarray, k: int, init_method: str
) -> None:
    kmeans_job(tmp_path, rows, k, init_method=init_method)
    kmeans.train(tmp_path)
    model = KMeansModel.load(tmp_path / "model")
    assert model.centroids.shape == (k, rows.shape[1])
    ratio = inertia(rows, model.centroids) / sklearn_inertia(rows, k)
    assert ratio < 1 + INERTIA_TOLERANCE, f"{name}: {ratio:.4f}"


@pytest.mark.parametrize(
    "hyperparameters",
    [
        {"epochs": "3"},
        {"half_life_time_size": "500"},
        {"extra_center_factor": "4", "local_lloyd_num_trials": "3"},
        {"local_lloyd_init_method": "random", "local_lloyd_max_iter": "50"},
    ],
    ids=["epochs", "decay", "fewer-centers", "random-lloyd"],
)
def test_other_settings_still_cluster_well(tmp_path: Path, hyperparameters: dict[str, str]) -> None:
    kmeans_job(tmp_path, BLOBS, 7, **hyperparameters)
    kmeans.train(tmp_path)
    centroids = KMeansModel.load(tmp_path / "model").centroids
    assert inertia(BLOBS, centroids) / sklearn_inertia(BLOBS, 7) < 1 + INERTIA_TOLERANCE


def test_training_is_deterministic(tmp_path: Path) -> None:
    for run in ("a", "b"):
        kmeans_job(tmp_path / run, DIGITS, 10)
        kmeans.train(tmp_path / run)
    first, second = (KMeansModel.load(tmp_path / run / "model") for run in ("a", "b"))
    np.testing.assert_array_equal(first.centroids, second.centroids)


def test_test_channel_is_scored_with_the_eval_metrics(tmp_path: Path) -> None:
    channels = {"train": "text/csv", "test": "text/csv;label_size=0"}
    data_dir = kmeans_job(tmp_path, BLOBS[:3000], 7, channels, eval_metrics='["msd","ssd"]')
    np.savetxt(data_dir / "test" / "test.csv", BLOBS[3000:], delimiter=",", fmt="%.10g")
    kmeans.train(tmp_path)
    meta = json.loads((tmp_path / "model" / "model_algo-1.json").read_text())
    ssd = inertia(BLOBS[3000:], KMeansModel.load(tmp_path / "model").centroids)
    assert meta["metrics"]["test:ssd"] == pytest.approx(ssd, rel=1e-9)
    assert meta["metrics"]["test:msd"] == pytest.approx(ssd / 1000, rel=1e-9)
    assert meta["metrics"]["train:msd"] > 0
    assert meta["rows"] == 3000


def test_pipe_mode_reads_one_fifo_per_epoch(tmp_path: Path) -> None:
    # Pipe mode hands an epoch's data as <channel>_<epoch>; plain files stand in for FIFOs.
    settings = {"k": "7", "feature_dim": "12", "mini_batch_size": "500", "epochs": "2"}
    data_dir = training.write_workspace(tmp_path, settings, {"train": "text/csv"}, "Pipe")
    for epoch in range(2):
        np.savetxt(data_dir / f"train_{epoch}", BLOBS, delimiter=",", fmt="%.10g")
    kmeans.train(tmp_path)
    centroids = KMeansModel.load(tmp_path / "model").centroids
    assert inertia(BLOBS, centroids) / sklearn_inertia(BLOBS, 7) < 1 + INERTIA_TOLERANCE


def test_sagemaker_sdk_hyperparameters_are_accepted(tmp_path: Path) -> None:
    # What sagemaker.KMeans(...).fit sends, spelled as the SDK spells it.
    kmeans_job(
        tmp_path,
        BLOBS,
        7,
        force_dense="True",
        init_method="kmeans++",
        extra_center_factor="auto",
        local_lloyd_num_trials="auto",
        eval_metrics='["msd"]',
        _tuning_objective_metric="test:msd",
    )
    kmeans.train(tmp_path)
    assert (tmp_path / "model" / "model_algo-1.npz").is_file()


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"k": None}, "k is required (a positive integer)"),
        ({"feature_dim": None}, "feature_dim is required"),
        ({"k": "0"}, "k='0' is not valid: expected a positive integer"),
        ({"epochs": "0"}, "epochs='0'"),
        ({"mini_batch_size": "many"}, "mini_batch_size='many'"),
        (
            {"init_method": "k-means++"},
            "init_method='k-means++' is not valid: expected random or kmeans++",
        ),
        ({"extra_center_factor": "0"}, "extra_center_factor='0' is not valid: expected auto or"),
        ({"local_lloyd_max_iter": "-1"}, "local_lloyd_max_iter='-1'"),
        (
            {"local_lloyd_tol": "1.5"},
            "local_lloyd_tol='1.5' is not valid: expected a number in [0, 1]",
        ),
        ({"local_lloyd_tol": "nan"}, "local_lloyd_tol='nan'"),
        ({"local_lloyd_init_method": "best"}, "local_lloyd_init_method='best'"),
        ({"local_lloyd_num_trials": "none"}, "local_lloyd_num_trials='none'"),
        (
            {"half_life_time_size": "-3"},
            "half_life_time_size='-3' is not valid: expected an integer >= 0",
        ),
        ({"eval_metrics": '["mae"]'}, """eval_metrics='["mae"]' is not valid"""),
        ({"eval_metrics": "[msd"}, "eval_metrics='[msd'"),
        ({"force_dense": "sometimes"}, "force_dense='sometimes'"),
        ({"num_components": "3"}, "num_components is not a hyperparameter of this algorithm"),
    ],
)
def test_bad_hyperparameters_fail_the_job(
    tmp_path: Path, changes: dict[str, str | None], expected: str
) -> None:
    settings: dict[str, str] = {"k": "7", "feature_dim": "12"}
    for name, value in changes.items():
        if value is None:
            settings.pop(name)
        else:
            settings[name] = value
    data_dir = training.write_workspace(tmp_path, settings, {"train": "text/csv"})
    np.savetxt(data_dir / "train" / "blobs.csv", BLOBS, delimiter=",")
    reason = failure(tmp_path)
    assert reason.startswith("ClientError: Invalid hyperparameters for kmeans: ")
    assert expected in reason


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    training.write_workspace(tmp_path, {"k": "0", "epochs": "x"}, {"train": "text/csv"})
    reason = failure(tmp_path)
    for text in ("k='0'", "feature_dim is required", "epochs='x'"):
        assert text in reason


def test_more_clusters_than_rows_is_refused(tmp_path: Path) -> None:
    kmeans_job(tmp_path, BLOBS[:20], 30)
    assert "k=30 needs at least k rows in the first mini-batch; it has 20" in failure(tmp_path)


def test_wrong_width_names_the_file(tmp_path: Path) -> None:
    kmeans_job(tmp_path, BLOBS, 7, feature_dim="13")
    assert "train/part-0.csv, line 1: found 12 columns, expected 13 (feature_dim=13)" in failure(
        tmp_path
    )


# --- the pieces ---------------------------------------------------------------------------


def test_nearest_matches_brute_force_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("batchform.algorithms.clustering._DISTANCE_CELLS", 64)
    rng = np.random.default_rng(1)
    rows, centers = rng.normal(size=(500, 5)), rng.normal(size=(9, 5))
    squared = ((rows[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    labels, distances = nearest(rows, centers)
    np.testing.assert_array_equal(labels, squared.argmin(axis=1))
    np.testing.assert_allclose(distances, squared.min(axis=1), rtol=1e-9)


def test_a_center_moves_by_its_share_of_new_rows() -> None:
    # SageMaker's step 2: 25 new rows on a center that had seen 100 → it moves 25/125.
    learner = WebScaleKMeans(np.array([[0.0], [100.0]]))
    learner.update(np.zeros((100, 1)))
    learner.update(np.full((25, 1), 10.0))
    assert learner.centers[0, 0] == pytest.approx(10.0 * 25 / 125)
    assert learner.counts.tolist() == [125.0, 0.0]


def test_weighted_lloyd_prefers_heavy_points() -> None:
    points = np.array([[0.0], [1.0], [10.0]])
    centers, msd = lloyd(points, np.array([1.0, 3.0, 1.0]), points[[0, 2]], LloydSettings())
    np.testing.assert_allclose(centers, [[0.75], [10.0]])
    assert msd == pytest.approx((0.75**2 + 3 * 0.25**2) / 5)


def test_kmeans_plus_plus_never_picks_weightless_points() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 3))
    weights = np.zeros(50)
    weights[:5] = 1.0
    chosen = kmeans_plus_plus(points, weights, 5, rng)
    assert sorted(map(tuple, chosen)) == sorted(map(tuple, points[:5]))
