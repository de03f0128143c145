"""`batchform quickstart`: the seed notebook's workflow, end to end, on generated data.

A review log with planted taste clusters → heavy reviewers and popular items → a 0/1
item x user matrix → built-in PCA trained and batch-transformed (train and held-out
items) → the DBSCAN bring-your-own container (examples/dbscan_container) trained on
PCA's output → held-out items clustered by batch transform → clusters with example
items. Every step goes through the service as a server user's would: CreateTrainingJob,
CreateModel, CreateTransformJob, Describe* until done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from batchform.errors import BatchformError

PCA_IMAGE = "builtin:pca"
DBSCAN = Path(__file__).resolve().parents[2] / "examples" / "dbscan_container"
Say = Callable[[str], None]


@dataclass(frozen=True)
class Dataset:
    matrix: np.ndarray  # items x users, 0/1
    item_cluster: np.ndarray  # the planted cluster of each item
    test_items: np.ndarray  # indices of the held-out items


def review_log(items: int, users: int, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) review events: users review items of the few clusters they like."""
    rng = np.random.default_rng(seed)
    item_cluster = rng.integers(0, clusters, size=items)
    taste = rng.random((users, clusters)) < 2.0 / clusters
    activity = rng.pareto(1.5, size=users) + 0.2  # a few heavy reviewers, many light ones
    liked = taste[:, item_cluster] & (
        rng.random((users, items)) < np.minimum(activity, 3)[:, None] / 4
    )
    noise = rng.random((users, items)) < 0.002
    user_index, item_index = np.nonzero(liked | noise)
    return np.stack([user_index, item_index], axis=1), item_cluster


def build_dataset(items: int, users: int, clusters: int, seed: int, say: Say) -> Dataset:
    events, item_cluster = review_log(items, users, clusters, seed)
    per_user = np.bincount(events[:, 0], minlength=users)
    per_item = np.bincount(events[:, 1], minlength=items)
    heavy_users = np.nonzero(per_user >= 35)[0]
    popular_items = np.nonzero(per_item >= 20)[0]
    say(
        f"{len(events)} reviews; keeping {len(heavy_users)} users with 35+ reviews and "
        f"{len(popular_items)} items reviewed 20+ times"
    )
    kept = np.isin(events[:, 0], heavy_users) & np.isin(events[:, 1], popular_items)
    rows = np.searchsorted(popular_items, events[kept, 1])
    columns = np.searchsorted(heavy_users, events[kept, 0])
    matrix = np.zeros((len(popular_items), len(heavy_users)), dtype=np.int8)
    matrix[rows, columns] = 1
    test = np.random.default_rng(seed + 1).random(len(popular_items)) < 0.05
    return Dataset(matrix, item_cluster[popular_items], np.nonzero(test)[0])


def write_dataset(data: Dataset, folder: Path) -> tuple[Path, Path]:
    train, test = folder / "train", folder / "test"
    train.mkdir(parents=True, exist_ok=True)
    test.mkdir(parents=True, exist_ok=True)
    keep = np.ones(len(data.matrix), dtype=bool)
    keep[data.test_items] = False
    for index, part in enumerate(np.array_split(data.matrix[keep], 2)):
        np.savetxt(train / f"part-{index}.csv", part, delimiter=",", fmt="%d")
    np.savetxt(test / "test.csv", data.matrix[data.test_items], delimiter=",", fmt="%d")
    return train, test


class Workflow:
    """Drives the service through the SageMaker operations, waiting as the SDK would."""

    def __init__(self, service: Any, folder: Path, say: Say) -> None:
        self.call = service.operations()
        self.folder = folder
        self.say = say
        self.suffix = time.strftime("%Y%m%d-%H%M%S")

    def name(self, stem: str) -> str:
        return f"{stem}-{self.suffix}"

    def train(
        self,
        stem: str,
        image: str,
        channel: Path,
        hyperparameters: dict[str, str],
        content_type: str,
    ) -> str:
        name = self.name(stem)
        self.call["CreateTrainingJob"](
            {
                "TrainingJobName": name,
                "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
                "HyperParameters": hyperparameters,
                "InputDataConfig": [
                    {
                        "ChannelName": "train",
                        "ContentType": content_type,
                        "DataSource": {
                            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{channel}/"}
                        },
                    }
                ],
                "OutputDataConfig": {"S3OutputPath": str(self.folder / "models")},
                "ResourceConfig": {"InstanceType": "ml.c4.xlarge", "InstanceCount": 1},
                "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            }
        )
        described = self._wait(
            "DescribeTrainingJob", {"TrainingJobName": name}, "TrainingJobStatus", "SecondaryStatus"
        )
        artifacts: str = described["ModelArtifacts"]["S3ModelArtifacts"]
        self.call["CreateModel"](
            {"ModelName": name, "PrimaryContainer": {"Image": image, "ModelDataUrl": artifacts}}
        )
        return name

    def transform(
        self, stem: str, model: str, source: Path, content_type: str, accept: str
    ) -> Path:
        name = self.name(stem)
        output = self.folder / "out" / stem
        self.call["CreateTransformJob"](
            {
                "TransformJobName": name,
                "ModelName": model,
                "BatchStrategy": "MultiRecord",
                "TransformInput": {
                    "DataSource": {
                        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{source}/"}
                    },
                    "ContentType": content_type,
                    "SplitType": "Line",
                },
                "TransformOutput": {
                    "S3OutputPath": str(output),
                    "Accept": accept,
                    "AssembleWith": "Line",
                },
                "TransformResources": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1},
            }
        )
        self._wait("DescribeTransformJob", {"TransformJobName": name}, "TransformJobStatus")
        return output

    def _wait(self, operation: str, body: dict[str, str], *fields: str) -> dict[str, Any]:
        started, shown = time.monotonic(), ""
        while True:
            described: dict[str, Any] = self.call[operation](body)
            state = " / ".join(str(described.get(field, "")) for field in fields)
            if state != shown:
                self.say(
                    f"  {next(iter(body.values()))}: {state} ({time.monotonic() - started:.0f} s)"
                )
                shown = state
            status = described[fields[0]]
            if status in ("Completed", "Failed", "Stopped"):
                if status != "Completed":
                    raise BatchformError(
                        f"{next(iter(body.values()))} {status}: "
                        f"{described.get('FailureReason', '')}"
                    )
                return described
            time.sleep(0.5)


def run_quickstart(
    service: Any,
    folder: Path,
    say: Say,
    items: int = 3000,
    users: int = 1500,
    clusters: int = 6,
    seed: int = 0,
) -> dict[int, list[int]]:
    """The whole workflow; answers held-out items by the cluster DBSCAN put them in."""
    if not (DBSCAN / "train").is_file():
        raise BatchformError(f"the DBSCAN example container is not at {DBSCAN}")
    say("1. A review log with planted clusters; heavy reviewers and popular items")
    data = build_dataset(items, users, clusters, seed, say)
    train, test = write_dataset(data, folder / "data")
    say(
        f"   {len(data.matrix) - len(data.test_items)} training items, "
        f"{len(data.test_items)} held out, {data.matrix.shape[1]} users (features)"
    )
    flow = Workflow(service, folder, say)
    say("2. Train the built-in PCA")
    hyperparameters = {
        "feature_dim": str(data.matrix.shape[1]),
        "num_components": "10",
        "subtract_mean": "True",
        "algorithm_mode": "randomized",
        "mini_batch_size": "500",
    }
    pca = flow.train("pca", PCA_IMAGE, train, hyperparameters, "text/csv;label_size=0")
    say("3. Batch-transform the training and held-out items with it")
    reduced_train = flow.transform("pca-train", pca, train, "text/csv", "application/jsonlines")
    reduced_test = flow.transform("pca-test", pca, test, "text/csv", "application/jsonlines")
    say("4. Train the DBSCAN container on PCA's output")
    dbscan = flow.train(
        "dbscan", str(DBSCAN), reduced_train, {"minPts": "5"}, "application/jsonlines"
    )
    say("5. Cluster the held-out items by batch transform")
    clustered = flow.transform(
        "dbscan-test", dbscan, reduced_test, "application/jsonlines", "text/csv"
    )
    found = _clusters(clustered / "test.csv.out.out", data)
    say("6. Clusters of held-out items")
    describe_clusters(found, data, say)
    return found


def _clusters(path: Path, data: Dataset) -> dict[int, list[int]]:
    labels = [int(float(line.split(",")[0])) for line in path.read_text().split()]
    found: dict[int, list[int]] = {}
    for item, label in zip(data.test_items, labels, strict=True):
        found.setdefault(label, []).append(int(item))
    return found


def describe_clusters(found: dict[int, list[int]], data: Dataset, say: Say) -> None:
    """Each cluster with two example items, as the notebook shows, and their planted tastes."""
    for label in sorted(found):
        members = found[label]
        planted = np.bincount(data.item_cluster[members]).argmax()
        name = "noise" if label == -1 else f"cluster {label}"
        examples = ", ".join(f"item {item}" for item in members[:2])
        say(f"   {name}: {len(members)} items (e.g. {examples}); most from planted taste {planted}")
