"""DataProcessing through `batchform transform`: filters and joins, byte for byte.

Real CLI processes and real handler workers. The models are small toolkit-style handlers
(tests/handlers/csv_sum, tests/handlers/jsonl_score) whose answers are easy to compute
here, so every expected `.out` is built independently of batchform's own code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_cli_transform import ROOT, batchform, read_tree

CSV_MODEL = ROOT / "tests" / "handlers" / "csv_sum"
JSONL_MODEL = ROOT / "tests" / "handlers" / "jsonl_score"
STRATEGIES = ["SingleRecord", "MultiRecord"]


def transform(
    tmp_path: Path, model: Path, *flags: str, strategy: str = "MultiRecord"
) -> tuple[int, str]:
    """Run one job over tmp_path/in into tmp_path/out; (exit code, stderr on one line)."""
    result = batchform(
        "transform",
        "--model",
        str(model),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
        "--strategy",
        strategy,
        "--split-type",
        "Line",
        "--assemble-with",
        "Line",
        "--concurrency",
        "4",
        "--max-payload",
        "1",
        "--max-retries",
        "0",
        "--instances",  # objects are spread over two instances, each with its processor
        "2",
        *flags,
        home=tmp_path / "home",
    )
    # rich wraps long lines at the terminal's width; messages are checked as one line.
    return result.returncode, " ".join(result.stderr.split())


def write_inputs(root: Path, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def outputs(tmp_path: Path) -> dict[str, bytes]:
    out = tmp_path / "out"
    return read_tree(out) if out.exists() else {}


# -- CSV: id column kept out of the model and joined back --------------------------------

CSV_JOIN = [
    "--content-type",
    "text/csv",
    "--accept",
    "text/csv",
    "--input-filter",
    "$[1:]",
    "--join-source",
    "Input",
]


def csv_rows(count: int) -> list[tuple[bytes, list[int]]]:
    """(id field as written, features) for `count` rows."""
    return [(b"id%d" % i, [i, i * 2 - 7, i % 13]) for i in range(count)]


def csv_file(rows: list[tuple[bytes, list[int]]]) -> bytes:
    return b"".join(
        ident + b"," + b",".join(b"%d" % f for f in feats) + b"\n" for ident, feats in rows
    )


def joined_id_and_max(rows: list[tuple[bytes, list[int]]]) -> bytes:
    """`$[0,-1]` of `id,f1,f2,f3,sum,max`: the id and the model's last column."""
    return b"".join(ident + b",%d\n" % max(feats) for ident, feats in rows)


# Quoted ids hold commas and quotes; a CRLF line and a blank line are not records.
QUOTED_IN = b'"smith, j",4,5,6\r\n\n"say ""hi""",1,-1,0\n\xc3\xa9t\xc3\xa9,2,2,2'
QUOTED_OUT = b'"smith, j",6\n"say ""hi""",1\n\xc3\xa9t\xc3\xa9,2\n'


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_csv_join_returns_each_id_next_to_its_prediction(tmp_path: Path, strategy: str) -> None:
    # MultiRecord: 60,000 rows at 1 MB a request are several batches, joined each on its own.
    rows = csv_rows(60_000 if strategy == "MultiRecord" else 300)
    write_inputs(tmp_path / "in", {"ids.csv": csv_file(rows), "sub/quoted.csv": QUOTED_IN})
    code, stderr = transform(
        tmp_path, CSV_MODEL, *CSV_JOIN, "--output-filter", "$[0,-1]", strategy=strategy
    )
    assert code == 0, stderr
    assert outputs(tmp_path) == {
        "ids.csv.out": joined_id_and_max(rows),
        "sub/quoted.csv.out": QUOTED_OUT,
    }


def test_csv_join_without_output_filter_appends_every_output_column(tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", {"a.csv": b"x,1,2,3\ny,4,5,-6\n"})
    code, stderr = transform(tmp_path, CSV_MODEL, *CSV_JOIN)
    assert code == 0, stderr
    assert outputs(tmp_path) == {"a.csv.out": b"x,1,2,3,6,3\ny,4,5,-6,3,5\n"}


def test_csv_output_filter_without_join_cuts_the_model_output(tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", {"a.csv": b"1,2,3\n4,5,-6\n"})
    code, stderr = transform(
        tmp_path,
        CSV_MODEL,
        "--content-type",
        "text/csv",
        "--accept",
        "text/csv",
        "--output-filter",
        "$[-1]",
    )
    assert code == 0, stderr
    assert outputs(tmp_path) == {"a.csv.out": b"3\n5\n"}


# -- JSON Lines: features to the model, id and prediction out ------------------------------

JSONL_JOIN = [
    "--content-type",
    "application/jsonlines",
    "--accept",
    "application/jsonlines",
    "--input-filter",
    "$.features",
    "--join-source",
    "Input",
    "--output-filter",
    "$['id','SageMakerOutput']",
]


def jsonl_records(count: int) -> list[dict[str, object]]:
    records: list[dict[str, object]] = [
        {"id": i, "features": [i, i % 5, -3], "note": "x" * (i % 3)} for i in range(count)
    ]
    # Ids a careless round trip would change: a string of digits, beyond 64 bits, unicode.
    records[:3] = [
        {"id": "0042", "features": [1, 2]},
        {"id": 2**70, "features": [0.5, 0.25]},
        {"features": [7], "id": "été ✓"},
    ]
    return records


def compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def id_and_score(records: list[dict[str, object]]) -> bytes:
    lines = [
        compact({"id": r["id"], "SageMakerOutput": {"score": sum(r["features"])}})  # type: ignore[arg-type]
        for r in records
    ]
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_jsonlines_join_returns_each_id_next_to_its_prediction(
    tmp_path: Path, strategy: str
) -> None:
    records = jsonl_records(20_000 if strategy == "MultiRecord" else 200)
    data = b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in records)
    write_inputs(tmp_path / "in", {"r.jsonl": data, "one.jsonl": b'{"id":"only","features":[1]}'})
    code, stderr = transform(tmp_path, JSONL_MODEL, *JSONL_JOIN, strategy=strategy)
    assert code == 0, stderr
    assert outputs(tmp_path) == {
        "r.jsonl.out": id_and_score(records),
        "one.jsonl.out": b'{"id":"only","SageMakerOutput":{"score":1}}\n',
    }


def test_jsonlines_join_wraps_a_record_that_is_not_an_object(tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", {"r.jsonl": b"[1,2]\n[3]\n"})
    code, stderr = transform(
        tmp_path,
        JSONL_MODEL,
        "--content-type",
        "application/jsonlines",
        "--accept",
        "application/jsonlines",
        "--join-source",
        "Input",
    )
    assert code == 0, stderr
    assert outputs(tmp_path) == {
        "r.jsonl.out": b'{"SageMakerInput":[1,2],"SageMakerOutput":{"score":3}}\n'
        b'{"SageMakerInput":[3],"SageMakerOutput":{"score":3}}\n'
    }


# -- a model that drops a record ---------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "counts"),
    [
        ("SingleRecord", "returned 0 records for 1 input records"),
        ("MultiRecord", "returned 2 records for 3 input records"),
    ],
)
def test_csv_join_count_mismatch_fails_that_object_only(
    tmp_path: Path, strategy: str, counts: str
) -> None:
    write_inputs(tmp_path / "in", {"bad.csv": b"a,1,2\nb,skip,0\nc,3,3\n", "good.csv": b"d,1,2\n"})
    code, stderr = transform(tmp_path, CSV_MODEL, *CSV_JOIN, strategy=strategy)
    assert code == 1
    assert outputs(tmp_path) == {"good.csv.out": b"d,1,2,3,2\n"}
    assert f"Failed to transform 'bad.csv': cannot join: the model {counts}" in stderr


def test_jsonlines_join_count_mismatch_names_both_counts(tmp_path: Path) -> None:
    records = b'{"id":1,"features":[1]}\n{"id":2,"features":[]}\n{"id":3,"features":[2]}\n'
    write_inputs(tmp_path / "in", {"deep/bad.jsonl": records})
    code, stderr = transform(tmp_path, JSONL_MODEL, *JSONL_JOIN)
    assert code == 1
    assert outputs(tmp_path) == {}
    assert "'deep/bad.jsonl'" in stderr
    assert "the model returned 2 records for 3 input records" in stderr


# -- settings SageMaker rejects --------------------------------------------------------------

INVALID = [
    (["--accept", "application/x-npy", "--join-source", "Input"], "transformOutput.accept"),
    (["--join-source", "Input"], "transformOutput.accept"),  # SageMaker: "you must set ... Accept"
    (["--accept", "text/csv", "--input-filter", "$.features"], "dataProcessing.inputFilter"),
    (["--accept", "text/csv", "--input-filter", "$[1:2:3]"], "at position 5"),
    (["--accept", "text/csv", "--output-filter", "$[0"], "dataProcessing.outputFilter"),
    (
        ["--accept", "text/csv", "--join-source", "Input", "--assemble-with", "None"],
        "transformOutput.assembleWith",
    ),
    (["--split-type", "RecordIO", "--input-filter", "$[1:]"], "transformInput.splitType"),
]


@pytest.mark.parametrize(("flags", "field"), INVALID, ids=[row[1] for row in INVALID])
def test_invalid_data_processing_exits_2_naming_the_field(
    tmp_path: Path, flags: list[str], field: str
) -> None:
    write_inputs(tmp_path / "in", {"a.csv": b"a,1,2\n"})
    code, stderr = transform(tmp_path, CSV_MODEL, "--content-type", "text/csv", *flags)
    assert code == 2
    assert field in stderr
    assert not (tmp_path / "out").exists()


# -- the same fields in a CreateTransformJob spec ------------------------------------------


def test_spec_file_data_processing_block(tmp_path: Path) -> None:
    # application/json with SplitType None: each object is one record, pretty-printed.
    records = {"a.json": {"id": "a", "features": [1, 2, 3]}, "b.json": {"features": [4], "id": 9}}
    write_inputs(
        tmp_path / "in",
        {key: json.dumps(value, indent=2).encode() for key, value in records.items()},
    )
    spec = {
        "TransformJobName": "join-from-spec",
        "ModelName": "jsonl-score",
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(tmp_path / "in")}
            },
            "ContentType": "application/json",
            "SplitType": "None",
        },
        "TransformOutput": {
            "S3OutputPath": str(tmp_path / "out"),
            "Accept": "application/jsonlines",
            "AssembleWith": "Line",
        },
        "DataProcessing": {
            "InputFilter": "$.features",
            "JoinSource": "Input",
            "OutputFilter": "$['id','SageMakerOutput']",
        },
    }
    (tmp_path / "job.json").write_text(json.dumps(spec))
    result = batchform(
        "transform",
        "--spec",
        str(tmp_path / "job.json"),
        "--model",
        str(JSONL_MODEL),
        home=tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr
    assert outputs(tmp_path) == {
        "a.json.out": b'{"id":"a","SageMakerOutput":{"score":6}}\n',
        "b.json.out": b'{"id":9,"SageMakerOutput":{"score":4}}\n',
    }
