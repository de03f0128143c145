"""`train`: fit DBSCAN on every file of the `train` channel, SageMaker's training contract.

Reads `$SAGEMAKER_BASE_DIR` (default /opt/ml): `input/config/hyperparameters.json`,
the files under `input/data/train/` (File mode; names starting with `.` or `_` are
metadata and skipped) or the FIFO `input/data/train_0` (Pipe mode); writes `model/`
and, on failure, `output/failure` (and exits 1).

Standard library only at import time, so that even a missing numpy or scikit-learn ends
up in `output/failure`.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

CHANNEL = "train"
KNOWN_HYPERPARAMETERS = frozenset({"minPts", "eps", "epsPercentile"})
# Files and folders named so are metadata, not data (the Hadoop and Spark convention):
# `.hidden`, `_SUCCESS`, and batchform's `_batchform/job_summary.json` next to a
# transform's output, which is what this container trains on.
HIDDEN = (".", "_")


class ClientError(Exception):
    """A problem with the job's data or hyperparameters, not with this program."""


def main() -> int:
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR") or "/opt/ml")
    try:
        import dbscan_core as core
    except ImportError as exc:  # numpy or scikit-learn missing under this interpreter
        return fail(base, f"AlgorithmError: {exc}")
    try:
        train(core, base)
    except ClientError as exc:
        return fail(base, f"ClientError: {exc}")
    except Exception as exc:
        traceback.print_exc()
        return fail(base, f"AlgorithmError: {type(exc).__name__}: {exc}")
    return 0


def fail(base: Path, message: str) -> int:
    """SageMaker's way to explain a failure: `output/failure` becomes the FailureReason."""
    print(message, file=sys.stderr, flush=True)
    output = base / "output"
    output.mkdir(parents=True, exist_ok=True)
    (output / "failure").write_text(message + "\n", encoding="utf-8")
    return 1


def train(core: Any, base: Path) -> None:
    """Fit on the channel's rows and write the model; `core` is dbscan_core."""
    try:
        settings = core.parse_settings(read_hyperparameters(base / "input" / "config"))
        matrix = read_channel(core, base / "input" / "data")
        print(f"dbscan: {matrix.shape[0]} rows of {matrix.shape[1]} values", flush=True)
        model, labels, rule = core.fit(matrix, settings)
    except core.DataError as exc:
        raise ClientError(str(exc)) from exc
    sizes = Counter(int(label) for label in labels if label >= 0)
    noise = int((labels < 0).sum())
    model.save(
        base / "model",
        epsRule=rule,
        trainingRows=int(matrix.shape[0]),
        clusters=len(sizes),
        noisePoints=noise,
        coreSamples=len(model.core_samples),
    )
    print(f"dbscan: minPts={model.min_pts}, eps={model.eps:.6g} ({rule})", flush=True)
    print(
        f"dbscan: {len(sizes)} clusters, {noise} noise points, "
        f"{len(model.core_samples)} core samples",
        flush=True,
    )
    largest = ", ".join(f"{label}: {size}" for label, size in sizes.most_common(10))
    if largest:
        print(f"dbscan: cluster sizes (largest first) {largest}", flush=True)


def read_hyperparameters(config: Path) -> dict[str, Any]:
    path = config / "hyperparameters.json"
    if not path.is_file():
        return {}
    try:
        hyperparameters = json.loads(path.read_text(encoding="utf-8") or "{}")
    except ValueError as exc:
        raise ClientError(f"{path.name} is not JSON: {exc}") from exc
    if not isinstance(hyperparameters, dict):
        raise ClientError(f"{path.name} must hold a JSON object")
    unknown = sorted(
        name
        for name in hyperparameters
        if name not in KNOWN_HYPERPARAMETERS and not name.startswith("sagemaker_")
    )
    if unknown:
        print(f"dbscan: ignoring unknown hyperparameters {', '.join(unknown)}", flush=True)
    return hyperparameters


def read_channel(core: Any, data: Path) -> Any:
    """All rows of the channel, file after file in sorted order (metadata files skipped),
    each file's format (CSV or JSON Lines) told from its first character."""
    import numpy as np

    folder, pipe = data / CHANNEL, data / f"{CHANNEL}_0"
    if folder.is_dir():
        files = sorted(
            path
            for path in folder.rglob("*")
            if path.is_file()
            and not any(part.startswith(HIDDEN) for part in path.relative_to(folder).parts)
        )
        if not files:
            raise ClientError(f"channel '{CHANNEL}' has no data files (only metadata)")
    elif pipe.exists():
        files = [pipe]
    else:
        raise ClientError(f"no '{CHANNEL}' channel: {folder} does not exist")
    matrices: list[Any] = []
    for path in files:
        name = str(path.relative_to(data / CHANNEL)) if path != pipe else pipe.name
        matrix = core.read_matrix(path.read_bytes(), None, name)
        if len(matrix):
            if matrices and matrix.shape[1] != matrices[0].shape[1]:
                raise ClientError(
                    f"{name}: rows have {matrix.shape[1]} values, "
                    f"but earlier files have {matrices[0].shape[1]}"
                )
            matrices.append(matrix)
    if not matrices:
        raise ClientError(f"channel '{CHANNEL}' has no rows")
    return np.concatenate(matrices)
