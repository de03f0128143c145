"""SageMaker's built-in PCA: streaming training and the projection it serves.

Training makes one pass over the data, mini-batch by mini-batch, keeping only the sum of
the rows and the scatter matrix X^T X (feature_dim² float64: 44 MB at 2348 features),
whatever the number of rows. The covariance follows as SageMaker's "How PCA works" puts
it, C = Σ x_iᵀx_i - (1/n)(Σ x_i)ᵀ(Σ x_i), and its top `num_components` eigenvectors are
the model: all of them from a symmetric eigensolver (algorithm_mode=regular), or from a
randomized subspace iteration with num_components + extra_components probe vectors
(randomized), which skips the full eigendecomposition and agrees closely with the exact
answer. (SageMaker's randomized mode instead sums random sketches of the batches, which
saves the feature_dim² matrix but is less accurate; the hyperparameters mean the same.)

The model stores, as SageMaker's does, the `mean` (zeros without subtract_mean), `v`
(feature_dim x num_components) and the singular values `s`, in ascending order of `s`
as SageMaker lists them: the last projection value is the largest component's. A
projection is (x - mean) · v, the same numbers as numpy's SVD of the centred data, up to
the sign of each component (fixed here so that each component's largest entry is
positive).

    python -m batchform.algorithms.pca train      # SAGEMAKER_BASE_DIR, default /opt/ml
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from batchform.algorithms.csvblock import Array
from batchform.algorithms.data import channel_batches
from batchform.algorithms.hyperparameters import (
    HyperparameterError,
    Param,
    boolean,
    non_negative_int_or_minus_one,
    one_of,
    parse_hyperparameters,
    positive_int,
)
from batchform.algorithms.modelfile import ModelFiles, load_model, save_model
from batchform.algorithms.responses import Prediction
from batchform.algorithms.training import TrainingInput, main, no_rows_error, run_training

ALGORITHM = "pca"
CHANNELS = ("train", "test")  # SageMaker accepts a test channel for PCA; it is not scored
PARAMS = (
    Param("feature_dim", positive_int, "a positive integer"),
    Param("num_components", positive_int, "a positive integer"),
    Param("mini_batch_size", positive_int, "a positive integer"),
    Param("algorithm_mode", one_of("regular", "randomized"), "regular or randomized", "regular"),
    Param("subtract_mean", boolean, "true or false", "true"),
    Param("extra_components", non_negative_int_or_minus_one, "-1 or an integer >= 0", "-1"),
)
MIN_SCATTER_ROWS = 2048
"""Rows per X^T X update: mini-batches are grouped up to this many, as small products
waste most of the BLAS speed (the sums are exact either way)."""
_SEED = 0  # the randomized mode's probes: the same data gives the same model


@dataclass(frozen=True)
class PCAConfig:
    feature_dim: int
    num_components: int
    mini_batch_size: int
    algorithm_mode: str
    subtract_mean: bool
    extra_components: int

    @classmethod
    def from_hyperparameters(cls, raw: dict[str, object]) -> PCAConfig:
        values = parse_hyperparameters(ALGORITHM, raw, PARAMS)
        config = cls(
            feature_dim=values.integer("feature_dim"),
            num_components=values.integer("num_components"),
            mini_batch_size=values.integer("mini_batch_size"),
            algorithm_mode=values.text("algorithm_mode"),
            subtract_mean=values.flag("subtract_mean"),
            extra_components=values.integer("extra_components"),
        )
        if config.num_components > config.feature_dim:
            problem = f"num_components={config.num_components} exceeds feature_dim"
            raise HyperparameterError(ALGORITHM, [f"{problem}={config.feature_dim}"])
        return config

    @property
    def probe_count(self) -> int:
        """num_components + extra_components, where -1 means max(10, num_components)."""
        k = self.num_components
        extra = max(10, k) if self.extra_components == -1 else self.extra_components
        return min(k + extra, self.feature_dim)

    @property
    def scatter_rows(self) -> int:
        batches = max(1, MIN_SCATTER_ROWS // self.mini_batch_size)
        return self.mini_batch_size * batches


class ScatterAccumulator:
    """Σx and Σxᵀx over mini-batches, in float64.

    With subtract_mean the rows are first shifted by the first batch's mean: the
    covariance is then a difference of numbers near its own size, not of two large
    ones, so data far from the origin keeps its precision."""

    def __init__(self, feature_dim: int, *, center: bool) -> None:
        self.center = center
        self.rows = 0
        self.shift = np.zeros(feature_dim)
        self.total = np.zeros(feature_dim)
        self.scatter = np.zeros((feature_dim, feature_dim))

    def add(self, batch: Array) -> None:
        if self.center:
            if self.rows == 0:
                self.shift = batch.mean(axis=0)
            batch = batch - self.shift
        self.scatter += batch.T @ batch  # numpy runs this as one BLAS syrk
        self.total += batch.sum(axis=0)
        self.rows += len(batch)

    def finish(self) -> tuple[Array, Array]:
        """(the mean removed, the scatter matrix about it); zeros and Σxᵀx uncentred.

        Computed in place, as feature_dim² floats are big: the accumulator is spent."""
        if not self.center:
            return np.zeros_like(self.total), self.scatter
        offset = self.total / self.rows
        self.scatter -= self.rows * np.outer(offset, offset)
        return self.shift + offset, self.scatter


@dataclass(frozen=True)
class PCAModel:
    mean: Array  # (feature_dim,)
    v: Array  # (feature_dim, num_components), columns in ascending order of s
    s: Array  # (num_components,) singular values, ascending

    @property
    def feature_dim(self) -> int:
        return int(self.v.shape[0])

    def project(self, rows: Array) -> Array:
        return np.asarray((rows - self.mean) @ self.v)

    def predict(self, rows: Array) -> Prediction:
        return Prediction("projections", (("projection", self.project(rows)),))

    def save(self, model_dir: Path, meta: dict[str, object]) -> None:
        arrays = {"mean": self.mean, "v": self.v, "s": self.s}
        save_model(model_dir, ALGORITHM, arrays, meta)

    @classmethod
    def from_files(cls, files: ModelFiles) -> PCAModel:
        return cls(files.array("mean"), files.array("v"), files.array("s"))

    @classmethod
    def load(cls, model_dir: Path) -> PCAModel:
        return cls.from_files(load_model(model_dir))


def fit(config: PCAConfig, batches: Iterable[Array]) -> tuple[PCAModel, int]:
    """The model and the number of rows it was fitted on (0: no model, no rows)."""
    accumulator = ScatterAccumulator(config.feature_dim, center=config.subtract_mean)
    for batch in batches:
        accumulator.add(batch)
    if accumulator.rows == 0:
        return PCAModel(np.zeros(0), np.zeros((0, 0)), np.zeros(0)), 0
    mean, covariance = accumulator.finish()
    eigenvalues, vectors = principal_axes(covariance, config)
    s = np.sqrt(np.clip(eigenvalues, 0.0, None))
    return PCAModel(mean, _signs_fixed(vectors), s), accumulator.rows


def principal_axes(covariance: Array, config: PCAConfig) -> tuple[Array, Array]:
    """The top num_components (eigenvalues, eigenvectors), in ascending order."""
    k = config.num_components
    if config.algorithm_mode == "regular":
        return _top_eigenpairs(covariance, k)
    return _randomized_axes(covariance, k, config.probe_count)


def _top_eigenpairs(matrix: Array, k: int) -> tuple[Array, Array]:
    """Exact top-k eigenpairs. LAPACK's syevr computes only those (through scipy, when
    installed: about 3x faster at 2348 features); numpy's eigh computes them all."""
    try:
        linalg = importlib.import_module("scipy.linalg")
    except ImportError:
        eigenvalues, vectors = np.linalg.eigh(matrix)
        return eigenvalues[-k:], vectors[:, -k:]
    wanted = [len(matrix) - k, len(matrix) - 1]
    pairs = linalg.eigh(matrix, subset_by_index=wanted, driver="evr", overwrite_a=True)
    return pairs[0], pairs[1]


def _randomized_axes(covariance: Array, k: int, probes: int) -> tuple[Array, Array]:
    """Halko, Martinsson & Tropp's subspace iteration on the (symmetric) covariance;
    power iterations as scikit-learn's 'auto' picks them."""
    rng = np.random.default_rng(_SEED)
    basis, _ = np.linalg.qr(covariance @ rng.standard_normal((covariance.shape[0], probes)))
    for _ in range(7 if k < 0.1 * covariance.shape[0] else 4):
        basis, _ = np.linalg.qr(covariance @ basis)
    eigenvalues, rotation = np.linalg.eigh(basis.T @ covariance @ basis)
    return eigenvalues[-k:], (basis @ rotation)[:, -k:]


def _signs_fixed(vectors: Array) -> Array:
    """Each column flipped so that its entry of largest magnitude is positive."""
    largest = np.abs(vectors).argmax(axis=0)
    signs = np.sign(vectors[largest, np.arange(vectors.shape[1])])
    return vectors * np.where(signs == 0, 1.0, signs)


# --- the training job -------------------------------------------------------------------

_log = logging.getLogger(__name__)


def train(base_dir: Path) -> None:
    """Train on the workspace at `base_dir`; the model goes to `<base_dir>/model/`."""
    run_training(base_dir, CHANNELS, _train_job)


def _train_job(job: TrainingInput) -> None:
    config = PCAConfig.from_hyperparameters(job.hyperparameters)
    channel = job.train_channel()
    started = time.perf_counter()
    batches = channel_batches(channel, config.feature_dim, config.scatter_rows)
    model, rows = fit(config, batches)
    if rows == 0:
        raise no_rows_error(channel)
    _log.info("fitted %d rows in %.2f s", rows, time.perf_counter() - started)
    meta = {"hyperparameters": job.hyperparameters, "config": asdict(config), "rows": rows}
    model.save(job.model_dir, meta)


if __name__ == "__main__":
    sys.exit(main(ALGORITHM, train, sys.argv[1:]))
