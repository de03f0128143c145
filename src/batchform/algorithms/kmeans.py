"""SageMaker's built-in k-means ("KMeansWebscale"): streaming training and serving.

Training follows SageMaker's "How k-means clustering works":
1. K = k x extra_center_factor centers are picked from the first mini-batch, at random or
   by k-means++ (init_method).
2. Every mini-batch of every epoch moves them as in Sculley's web-scale k-means: each row
   joins its nearest center, and a center that received m new rows, having seen n in
   all, moves m/n of the way to their mean (half_life_time_size > 0 makes old rows'
   weight decay, halving every half_life_time_size rows).
3. The K centers, weighted by the rows they absorbed, are reduced to k by Lloyd's
   algorithm (local_lloyd_*): local_lloyd_num_trials runs from local_lloyd_init_method
   starts, each until the weighted mean squared distance improves by less than
   local_lloyd_tol (relatively) or after local_lloyd_max_iter steps; the lowest wins.

"auto" means what SageMaker's logs show it choosing: extra_center_factor 10 ("shrinking
80 centers into 8" for k=8) and ten local trials. The model is the k `centroids`.
Inference answers each row's `closest_cluster` (a float, as SageMaker writes it) and
its Euclidean `distance_to_cluster`.

    python -m batchform.algorithms.kmeans train   # SAGEMAKER_BASE_DIR, default /opt/ml
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from batchform.algorithms.clustering import (
    LloydSettings,
    WebScaleKMeans,
    initial_centers,
    local_lloyd,
    nearest,
)
from batchform.algorithms.csvblock import Array
from batchform.algorithms.data import Channel, channel_batches
from batchform.algorithms.hyperparameters import (
    Param,
    boolean,
    metric_list,
    non_negative_int,
    one_of,
    parse_hyperparameters,
    positive_int,
    positive_int_or_auto,
    unit_interval,
)
from batchform.algorithms.modelfile import ModelFiles, load_model, save_model
from batchform.algorithms.responses import Prediction
from batchform.algorithms.training import TrainingInput, main, no_rows_error, run_training
from batchform.errors import ConfigurationError

ALGORITHM = "kmeans"
CHANNELS = ("train", "test")
_INIT = "random or kmeans++"
_POSITIVE = "a positive integer"
_AUTO = "auto or a positive integer"
PARAMS = (
    Param("k", positive_int, _POSITIVE),
    Param("feature_dim", positive_int, _POSITIVE),
    Param("mini_batch_size", positive_int, _POSITIVE, "5000"),
    Param("epochs", positive_int, _POSITIVE, "1"),
    Param("init_method", one_of("random", "kmeans++"), _INIT, "random"),
    Param("extra_center_factor", positive_int_or_auto, _AUTO, "auto"),
    Param("local_lloyd_max_iter", positive_int, _POSITIVE, "300"),
    Param("local_lloyd_tol", unit_interval, "a number in [0, 1]", "0.0001"),
    Param("local_lloyd_init_method", one_of("random", "kmeans++"), _INIT, "kmeans++"),
    Param("local_lloyd_num_trials", positive_int_or_auto, _AUTO, "auto"),
    Param("half_life_time_size", non_negative_int, "an integer >= 0", "0"),
    Param("eval_metrics", metric_list("msd", "ssd"), 'a JSON list of "msd", "ssd"', '["msd"]'),
    # The SageMaker SDK's KMeans estimator always sends force_dense=True; data is dense here.
    Param("force_dense", boolean, "true or false", "true"),
)
AUTO_EXTRA_CENTER_FACTOR = 10
AUTO_LOCAL_TRIALS = 10
_SEED = 0  # the same data and hyperparameters give the same model

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KMeansConfig:
    k: int
    feature_dim: int
    mini_batch_size: int
    epochs: int
    init_method: str
    extra_center_factor: int
    local_lloyd: LloydSettings
    half_life_time_size: int
    eval_metrics: tuple[str, ...]

    @classmethod
    def from_hyperparameters(cls, raw: dict[str, object]) -> KMeansConfig:
        values = parse_hyperparameters(ALGORITHM, raw, PARAMS)
        factor = values.optional_integer("extra_center_factor")
        trials = values.optional_integer("local_lloyd_num_trials")
        lloyd = LloydSettings(
            max_iter=values.integer("local_lloyd_max_iter"),
            tol=values.number("local_lloyd_tol"),
            init_method=values.text("local_lloyd_init_method"),
            num_trials=trials or AUTO_LOCAL_TRIALS,
        )
        return cls(
            k=values.integer("k"),
            feature_dim=values.integer("feature_dim"),
            mini_batch_size=values.integer("mini_batch_size"),
            epochs=values.integer("epochs"),
            init_method=values.text("init_method"),
            extra_center_factor=factor or AUTO_EXTRA_CENTER_FACTOR,
            local_lloyd=lloyd,
            half_life_time_size=values.integer("half_life_time_size"),
            eval_metrics=values.names("eval_metrics"),
        )


@dataclass(frozen=True)
class KMeansModel:
    centroids: Array  # (k, feature_dim)

    @property
    def feature_dim(self) -> int:
        return int(self.centroids.shape[1])

    def assign(self, rows: Array) -> tuple[Array, Array]:
        """(closest cluster index, Euclidean distance to it) for each row."""
        labels, squared = nearest(rows, self.centroids)
        return labels, np.sqrt(squared)

    def predict(self, rows: Array) -> Prediction:
        labels, distances = self.assign(rows)
        fields = (
            ("closest_cluster", labels.astype(np.float64)),
            ("distance_to_cluster", distances),
        )
        return Prediction("predictions", fields)

    def save(self, model_dir: Path, meta: dict[str, object]) -> None:
        save_model(model_dir, ALGORITHM, {"centroids": self.centroids}, meta)

    @classmethod
    def from_files(cls, files: ModelFiles) -> KMeansModel:
        return cls(files.array("centroids"))

    @classmethod
    def load(cls, model_dir: Path) -> KMeansModel:
        return cls.from_files(load_model(model_dir))


@dataclass(frozen=True)
class FitResult:
    model: KMeansModel
    rows: int  # rows seen in the first epoch
    train_msd: float  # the weighted mean squared distance of the reduction, as SageMaker reports


def fit(config: KMeansConfig, epoch_batches: Callable[[int], Iterable[Array]]) -> FitResult:
    """Train on `epoch_batches(epoch)`, one pass over the data per call."""
    rng = np.random.default_rng(_SEED)
    batches = iter(epoch_batches(0))
    first = next(batches, None)
    if first is None:
        return FitResult(KMeansModel(np.zeros((0, config.feature_dim))), 0, 0.0)
    learner = WebScaleKMeans(_initial(config, first, rng), config.half_life_time_size)
    rows = _one_pass(learner, _chain(first, batches))
    for epoch in range(1, config.epochs):
        _one_pass(learner, epoch_batches(epoch))
    _log.info("shrinking %d centers into %d", len(learner.centers), config.k)
    centroids, msd = local_lloyd(learner.centers, learner.counts, config.k, config.local_lloyd, rng)
    return FitResult(KMeansModel(centroids), rows, msd)


def _initial(config: KMeansConfig, first: Array, rng: np.random.Generator) -> Array:
    if len(first) < config.k:
        raise ConfigurationError(
            f"k={config.k} needs at least k rows in the first mini-batch; it has "
            f"{len(first)} (mini_batch_size={config.mini_batch_size})"
        )
    count = min(config.k * config.extra_center_factor, len(first))
    return initial_centers(first, count, config.init_method, rng)


def _chain(first: Array, rest: Iterator[Array]) -> Iterator[Array]:
    yield first
    yield from rest


def _one_pass(learner: WebScaleKMeans, batches: Iterable[Array]) -> int:
    rows = 0
    for batch in batches:
        learner.update(batch)
        rows += len(batch)
    return rows


def score(model: KMeansModel, batches: Iterable[Array]) -> dict[str, float]:
    """SageMaker's eval metrics over data: ssd (sum of squared distances) and msd."""
    ssd, rows = 0.0, 0
    for batch in batches:
        ssd += float(nearest(batch, model.centroids)[1].sum())
        rows += len(batch)
    return {"ssd": ssd, "msd": ssd / rows if rows else float("nan")}


# --- the training job -------------------------------------------------------------------


def train(base_dir: Path) -> None:
    """Train on the workspace at `base_dir`; the model goes to `<base_dir>/model/`."""
    run_training(base_dir, CHANNELS, _train_job)


def _train_job(job: TrainingInput) -> None:
    config = KMeansConfig.from_hyperparameters(job.hyperparameters)
    channel = job.train_channel()
    result = fit(config, _batches_of(channel, config))
    if result.rows == 0:
        raise no_rows_error(channel)
    _log.info("#quality_metric: host=algo-1, train msd <loss>=%r", result.train_msd)
    metrics = {"train:msd": result.train_msd, **_test_metrics(job, config, result.model)}
    meta = {"config": asdict(config), "rows": result.rows, "metrics": metrics}
    result.model.save(job.model_dir, {"hyperparameters": job.hyperparameters, **meta})


def _batches_of(channel: Channel, config: KMeansConfig) -> Callable[[int], Iterable[Array]]:
    def batches(epoch: int) -> Iterable[Array]:
        return channel_batches(channel, config.feature_dim, config.mini_batch_size, epoch)

    return batches


def _test_metrics(job: TrainingInput, config: KMeansConfig, model: KMeansModel) -> dict[str, float]:
    channel = job.channel("test")
    if channel is None:
        return {}
    scores = score(model, _batches_of(channel, config)(0))
    for name in config.eval_metrics:
        _log.info("#quality_metric: host=algo-1, test %s <loss>=%r", name, scores[name])
    return {f"test:{name}": scores[name] for name in config.eval_metrics}


if __name__ == "__main__":
    sys.exit(main(ALGORITHM, train, sys.argv[1:]))
