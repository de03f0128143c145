"""Built-in PCA training: batchform's streaming trainer against scikit-learn, as the seed
notebook trains it (2348 features of a 0/1 user-item matrix, 100 components,
subtract_mean, mini_batch_size 500), in both algorithm modes.

    python benchmarks/pca_training.py            # 200 MB of CSV
    python benchmarks/pca_training.py --mb 50    # a quick look

batchform runs as a training container does: `python -m batchform.algorithms.pca train`
on a prepared workspace. scikit-learn runs as a user would: pandas reads the CSV, then
PCA(svd_solver='full' | 'randomized').fit. Each side is one process, measured from launch
to exit (wall time, peak RSS). Targets: at most 1.5x scikit-learn's time and 0.5x its
memory. "variance kept" compares the variance the two sets of components capture (sum
of squared singular values; 1.0 means as good as scikit-learn).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from batchform.algorithms.training import write_workspace
from common import ROOT, Measurement, ensure, print_table, run_measured, save_json, write_wide_csv

DATA = ROOT / "benchmarks" / "data"
FEATURES = 2348
COMPONENTS = 100
MODES = {"regular": "full", "randomized": "randomized"}  # batchform mode → sklearn solver

SKLEARN_SCRIPT = """
import sys
import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
path, solver, components, out = sys.argv[1:]
X = pd.read_csv(path, header=None).to_numpy(dtype=np.float64)
pca = PCA(n_components=int(components), svd_solver=solver, random_state=0).fit(X)
np.save(out, pca.singular_values_)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=200.0, help="CSV size in MB")
    args = parser.parse_args()
    size = int(args.mb * 1e6)
    data = DATA / f"wide-{size}.csv"
    rows = ensure(data, write_wide_csv, size)
    results = []
    with tempfile.TemporaryDirectory(prefix="bf-pca-") as tmp:
        for mode, solver in MODES.items():
            ours, our_s = run_batchform(Path(tmp, mode), data, mode)
            theirs, their_s = run_sklearn(Path(tmp, f"{mode}-sklearn.npy"), data, solver)
            results.append(_row(mode, ours, theirs, our_s, their_s))
    report(rows, data, results)


def run_batchform(base: Path, data: Path, mode: str) -> tuple[Measurement, np.ndarray]:
    hyperparameters = {
        "feature_dim": str(FEATURES),
        "num_components": str(COMPONENTS),
        "subtract_mean": "True",
        "algorithm_mode": mode,
        "mini_batch_size": "500",
    }
    data_dir = write_workspace(base, hyperparameters, {"train": "text/csv;label_size=0"})
    (data_dir / "train" / data.name).symlink_to(data)  # the runner copies; a link spares disk
    argv = [sys.executable, "-m", "batchform.algorithms.pca", "train"]
    measured = run_measured(f"batchform {mode}", argv, env={"SAGEMAKER_BASE_DIR": str(base)})
    with np.load(base / "model" / "model_algo-1.npz") as model:
        return measured, model["s"]


def run_sklearn(out: Path, data: Path, solver: str) -> tuple[Measurement, np.ndarray]:
    argv = [sys.executable, "-c", SKLEARN_SCRIPT, str(data), solver, str(COMPONENTS), str(out)]
    return run_measured(f"scikit-learn {solver}", argv), np.load(out)


def _row(
    mode: str, ours: Measurement, theirs: Measurement, our_s: np.ndarray, their_s: np.ndarray
) -> dict[str, object]:
    return {
        "mode": mode,
        "batchform": ours,
        "sklearn": theirs,
        "time_ratio": ours.wall_seconds / theirs.wall_seconds,
        "memory_ratio": ours.peak_rss_mb / theirs.peak_rss_mb,
        "variance_kept": float(np.sum(our_s**2) / np.sum(their_s**2)),
    }


def report(rows: int, data: Path, results: list[dict[str, object]]) -> None:
    header = ["mode", "batchform s", "sklearn s", "time ratio", "batchform MB", "sklearn MB"]
    header += ["memory ratio", "variance kept"]
    table = [_cells(result) for result in results]
    title = (
        f"PCA training, {rows} rows x {FEATURES} features ({data.stat().st_size / 1e6:.0f} MB CSV)"
    )
    print_table(title, header, table)
    print("targets: time ratio <= 1.5, memory ratio <= 0.5")
    path = save_json("pca_training", {"rows": rows, "features": FEATURES, "results": results})
    print(f"wrote {path}")


def _cells(result: dict[str, object]) -> list[str]:
    ours, theirs = result["batchform"], result["sklearn"]
    assert isinstance(ours, Measurement) and isinstance(theirs, Measurement)
    return [
        str(result["mode"]),
        f"{ours.wall_seconds:.1f}",
        f"{theirs.wall_seconds:.1f}",
        f"{result['time_ratio']:.2f}",
        f"{ours.peak_rss_mb:.0f}",
        f"{theirs.peak_rss_mb:.0f}",
        f"{result['memory_ratio']:.2f}",
        f"{result['variance_kept']:.4f}",
    ]


if __name__ == "__main__":
    main()
