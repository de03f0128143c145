"""Generate a user-item 0/1 review matrix like the seed notebook's, as CSV files.

Items belong to planted taste clusters; each user likes items of a few clusters, so
PCA and clustering find real structure. Rows are items, columns users (as in the
notebook's `train.csv`), one file per `--parts`.

    python examples/make_ratings.py data/ --items 2000 --users 500 --parts 4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def ratings(items: int, users: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    item_cluster = rng.integers(0, clusters, size=items)
    user_taste = rng.random((users, clusters)) < 2.0 / clusters
    liked = user_taste[:, item_cluster].T  # items x users: the user likes the item's cluster
    noise = rng.random((items, users))
    return ((liked & (noise < 0.6)) | (noise < 0.01)).astype(np.int8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--clusters", type=int, default=8)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    matrix = ratings(args.items, args.users, args.clusters, args.seed)
    args.output.mkdir(parents=True, exist_ok=True)
    for index, part in enumerate(np.array_split(matrix, args.parts)):
        path = args.output / f"part-{index:03d}.csv"
        np.savetxt(path, part, delimiter=",", fmt="%i")
        print(f"wrote {path} ({part.shape[0]} items x {part.shape[1]} users)")


if __name__ == "__main__":
    main()
