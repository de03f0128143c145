"""The numerical pieces of k-means: nearest centers, k-means++, mini-batch and Lloyd steps.

Pure numpy on arrays in memory (a mini-batch, or the K intermediate centers); streaming
and the training job are kmeans.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from batchform.algorithms.csvblock import Array

_DISTANCE_CELLS = 1 << 22  # rows x centers per distance block: 32 MB of float64


def nearest(rows: Array, centers: Array) -> tuple[Array, Array]:
    """Index of each row's nearest center, and the squared distance to it.

    Distances come from |x|² - 2x·c + |c|² (one matrix product), in blocks of rows so
    that the rows x centers matrix stays small however many rows there are."""
    center_norms = np.einsum("ij,ij->i", centers, centers)
    step = max(1, _DISTANCE_CELLS // max(1, len(centers)))
    labels = np.empty(len(rows), dtype=np.int64)
    squared = np.empty(len(rows))
    for start in range(0, len(rows), step):
        block = rows[start : start + step]
        distances = center_norms - 2.0 * (block @ centers.T)
        closest = distances.argmin(axis=1)
        labels[start : start + step] = closest
        row_norms = np.einsum("ij,ij->i", block, block)
        best = distances[np.arange(len(block)), closest] + row_norms
        squared[start : start + step] = np.maximum(best, 0.0)  # rounding can dip below 0
    return labels, squared


def cluster_sums(rows: Array, labels: Array, clusters: int, weights: Array | None = None) -> Array:
    """Σ (weight x) row per cluster, as a (clusters, features) array."""
    weighted = rows if weights is None else rows * weights[:, None]
    order = np.argsort(labels, kind="stable")
    present, starts = np.unique(labels[order], return_index=True)
    sums = np.zeros((clusters, rows.shape[1]))
    if len(present):
        sums[present] = np.add.reduceat(weighted[order], starts, axis=0)
    return sums


def initial_centers(rows: Array, count: int, method: str, rng: np.random.Generator) -> Array:
    """`count` of the rows as starting centers: uniformly at random, or by k-means++."""
    if method == "kmeans++":
        return kmeans_plus_plus(rows, np.ones(len(rows)), count, rng)
    return rows[rng.choice(len(rows), size=count, replace=False)].copy()


def kmeans_plus_plus(points: Array, weights: Array, count: int, rng: np.random.Generator) -> Array:
    """Arthur & Vassilvitskii's seeding: each next center drawn with probability
    proportional to weight x squared distance to the nearest center chosen so far."""
    chosen = [_draw(weights, rng)]
    squared = nearest(points, points[chosen])[1]
    for _ in range(1, count):
        chosen.append(_draw(weights * squared, rng, exclude=chosen))
        squared = np.minimum(squared, nearest(points, points[chosen[-1:]])[1])
    return points[chosen].copy()


def _draw(mass: Array, rng: np.random.Generator, exclude: list[int] | None = None) -> int:
    """An index drawn in proportion to `mass`; uniformly among the rest when it is all 0
    (every point already sits on a center)."""
    total = float(mass.sum())
    if total > 0:
        return int(rng.choice(len(mass), p=mass / total))
    free = np.setdiff1d(np.arange(len(mass)), exclude or [])
    return int(rng.choice(free if len(free) else np.arange(len(mass))))


class WebScaleKMeans:
    """Sculley's mini-batch k-means, with SageMaker's per-center learning rate and
    optional decay of old rows' weight."""

    def __init__(self, centers: Array, half_life_rows: int = 0) -> None:
        self.centers = centers.astype(np.float64, copy=True)
        self.counts = np.zeros(len(centers))
        self.half_life_rows = half_life_rows

    def update(self, batch: Array) -> None:
        labels, _ = nearest(batch, self.centers)
        arrived = np.bincount(labels, minlength=len(self.centers)).astype(np.float64)
        if self.half_life_rows:
            self.counts *= 0.5 ** (len(batch) / self.half_life_rows)
        self.counts += arrived
        hit = arrived > 0
        means = cluster_sums(batch, labels, len(self.centers))[hit] / arrived[hit, None]
        rate = arrived[hit] / self.counts[hit]
        self.centers[hit] += rate[:, None] * (means - self.centers[hit])


@dataclass(frozen=True)
class LloydSettings:
    max_iter: int = 300
    tol: float = 1e-4
    init_method: str = "kmeans++"
    num_trials: int = 10


def local_lloyd(
    points: Array, weights: Array, k: int, settings: LloydSettings, rng: np.random.Generator
) -> tuple[Array, float]:
    """The best of num_trials weighted Lloyd runs: (k centers, weighted msd)."""
    best: tuple[Array, float] | None = None
    for _ in range(settings.num_trials):
        start = _lloyd_start(points, weights, k, settings.init_method, rng)
        centers, msd = lloyd(points, weights, start, settings)
        if best is None or msd < best[1]:
            best = (centers, msd)
    assert best is not None  # num_trials is positive
    return best


def _lloyd_start(
    points: Array, weights: Array, k: int, method: str, rng: np.random.Generator
) -> Array:
    if method == "kmeans++":
        return kmeans_plus_plus(points, weights, k, rng)
    # random: k distinct points, favouring those that absorbed more rows
    candidates = np.flatnonzero(weights > 0)
    if len(candidates) < k:
        candidates = np.arange(len(points))
    mass = weights[candidates] + 1e-12
    picked: Array = rng.choice(candidates, size=k, replace=False, p=mass / mass.sum())
    return points[picked].copy()


def lloyd(
    points: Array, weights: Array, centers: Array, settings: LloydSettings
) -> tuple[Array, float]:
    """Weighted Lloyd iterations from `centers`; stops when the weighted msd improves by
    less than tol relatively. An emptied cluster keeps its center."""
    previous = np.inf
    for _ in range(settings.max_iter):
        labels, msd = _assignment(points, weights, centers)
        if msd >= previous * (1.0 - settings.tol):
            return centers, msd
        previous = msd
        centers = _weighted_means(points, weights, labels, centers)
    return centers, _assignment(points, weights, centers)[1]


def _assignment(points: Array, weights: Array, centers: Array) -> tuple[Array, float]:
    labels, squared = nearest(points, centers)
    return labels, float(weights @ squared) / (float(weights.sum()) or 1.0)


def _weighted_means(points: Array, weights: Array, labels: Array, centers: Array) -> Array:
    mass = np.bincount(labels, weights=weights, minlength=len(centers))
    sums = cluster_sums(points, labels, len(centers), weights)
    filled = mass > 0
    updated = centers.copy()
    updated[filled] = sums[filled] / mass[filled, None]
    return updated
