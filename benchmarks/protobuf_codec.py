"""RecordIO-protobuf codec throughput: batchform.records.protobuf against the sagemaker SDK.

    python benchmarks/protobuf_codec.py               # 100k x 50 float32, best of 3
    python benchmarks/protobuf_codec.py --rows 10000  # a quick look

Dense: a 100k x 50 float32 matrix, written by our encode_dense and the SDK's
write_numpy_to_dense_tensor (the bytes are checked to be the same), read back by our
decode / iter_records (to a numpy matrix) and the SDK's read_records (to protobuf Record
objects; "+ to numpy" adds the loop a user needs to get a matrix out of them). Sparse:
the same for a 100k x 1000 CSR matrix, 1 % full, with encode_sparse and
write_spmatrix_to_sparse_tensor. MB/s are of the encoded bytes; "vs SDK" is our MB/s over
the SDK's for the same operation. Results go to benchmarks/results/protobuf_codec.json.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import numpy as np
import scipy.sparse as sp
from sagemaker.amazon.common import (
    read_records,
    write_numpy_to_dense_tensor,
    write_spmatrix_to_sparse_tensor,
)

from batchform.records import protobuf
from common import print_table, save_json

BATCH = 10_000  # rows a batch for iter_records, a training mini-batch of a sort


def best_seconds(operation: Callable[[], object], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        operation()
        timings.append(time.perf_counter() - started)
    return min(timings)


def sdk_write(writer: Callable[..., None], matrix: object) -> bytes:
    out = io.BytesIO()
    writer(out, matrix)
    return out.getvalue()


def records_to_numpy(data: bytes, width: int) -> np.ndarray:
    """The SDK's reader, then what a user writes to get a dense matrix out of its Records."""
    records = read_records(io.BytesIO(data))
    matrix = np.zeros((len(records), width), np.float32)
    for row, record in enumerate(records):
        tensor = record.features["values"].float32_tensor
        columns = np.array(tensor.keys, np.int64) if tensor.shape else slice(None)
        matrix[row, columns] = tensor.values
    return matrix


def streamed(data: bytes) -> int:
    return sum(len(batch) for batch in protobuf.iter_records(io.BytesIO(data), BATCH))


def compare(
    name: str,
    ours_encode: Callable[[], bytes],
    writer: Callable[..., None],
    matrix: object,
    dense: np.ndarray,
    repeat: int,
) -> list[dict[str, Any]]:
    """Every operation on one matrix, ours and the SDK's, checked to agree."""
    data = ours_encode()
    assert data == sdk_write(writer, matrix), "our bytes differ from the SDK's"
    assert np.array_equal(protobuf.decode(data).features, dense)
    assert np.array_equal(records_to_numpy(data, dense.shape[1]), dense)
    operations: list[tuple[str, str, Callable[[], object]]] = [
        ("encode", "batchform encode", ours_encode),
        ("encode", "SDK writer", lambda: sdk_write(writer, matrix)),
        ("decode", "batchform decode", lambda: protobuf.decode(data)),
        ("decode", f"batchform iter_records ({BATCH} rows a batch)", lambda: streamed(data)),
        ("decode", "SDK read_records", lambda: read_records(io.BytesIO(data))),
        ("decode", "SDK read_records + to numpy", lambda: records_to_numpy(data, dense.shape[1])),
    ]
    rows: list[dict[str, Any]] = []
    for operation, codec, call in operations:
        print(f"{name}: {codec} ...", flush=True)
        seconds = best_seconds(call, repeat)
        rows.append(
            {
                "data": name,
                "operation": operation,
                "codec": codec,
                "mb": len(data) / 1e6,
                "seconds": seconds,
                "mb_per_s": len(data) / 1e6 / seconds,
            }
        )
    return with_ratios(rows)


def with_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row's MB/s over the SDK's plain reader or writer."""
    sdk = {row["operation"]: row["mb_per_s"] for row in rows if row["codec"] in _SDK_BASELINES}
    for row in rows:
        row["vs_sdk"] = row["mb_per_s"] / sdk[row["operation"]]
    return rows


_SDK_BASELINES = ("SDK writer", "SDK read_records")
COLUMNS = [  # (table header, result key, format)
    ("data", "data", "{}"),
    ("operation", "operation", "{}"),
    ("codec", "codec", "{}"),
    ("MB", "mb", "{:.1f}"),
    ("best s", "seconds", "{:.3f}"),
    ("MB/s", "mb_per_s", "{:.1f}"),
    ("vs SDK", "vs_sdk", "{:.1f}x"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-sparse", action="store_true", help="only the dense matrix")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(args.rows, args.columns)).astype(np.float32)
    title = f"{args.rows} x {args.columns} float32"
    encode_dense = functools.partial(protobuf.encode_dense, dense)
    rows = compare(title, encode_dense, write_numpy_to_dense_tensor, dense, dense, args.repeat)
    if not args.no_sparse:
        sparse = sp.random(
            args.rows, 1000, density=0.01, format="csr", dtype=np.float32, random_state=1
        )
        name = f"{args.rows} x 1000 float32 CSR, 1 % full"
        encode_sparse = functools.partial(protobuf.encode_sparse, sparse)
        writer = write_spmatrix_to_sparse_tensor
        rows += compare(name, encode_sparse, writer, sparse, sparse.toarray(), args.repeat)
    table = [[layout.format(row[key]) for _, key, layout in COLUMNS] for row in rows]
    header = [heading for heading, _, _ in COLUMNS]
    print_table(f"RecordIO-protobuf codec, best of {args.repeat}", header, table)
    path = save_json("protobuf_codec", {"rows": args.rows, "repeat": args.repeat, "results": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
