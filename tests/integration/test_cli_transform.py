"""`batchform transform` end to end, as a user runs it: a real process, real handler workers."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ECHO = ROOT / "examples" / "echo_handler"
FAILING = ROOT / "tests" / "handlers" / "fail_on_marker"


def batchform(
    *args: str, home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "BATCHFORM_HOME": str(home), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "batchform.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=240,
        check=False,
    )


def rows(start: int, count: int) -> bytes:
    return b"".join(b"%d,%d,%d\n" % (i, i * 2, i % 7) for i in range(start, start + count))


def make_inputs(root: Path) -> dict[str, bytes]:
    """Nested keys, a gzip object, an empty object; returns the expected outputs."""
    files = {
        "a.csv": rows(0, 40000),
        "nested/deep/b.csv": rows(5, 3),
        "c.csv": rows(9, 20000),
        "empty.csv": b"",
    }
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return {f"{key}.out": data for key, data in files.items()}


def read_tree(root: Path) -> dict[str, bytes]:
    """Every output object, leaving out batchform's own `_batchform/` reports."""
    files = (p for p in root.rglob("*") if p.is_file())
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in files
        if p.relative_to(root).parts[0] != "_batchform"
    }


COMMON = [
    "--content-type",
    "text/csv",
    "--split-type",
    "Line",
    "--strategy",
    "MultiRecord",
    "--max-payload",
    "1",
    "--concurrency",
    "4",
    "--instances",
    "2",
    "--assemble-with",
    "Line",
]


def test_transform_local_folder_two_instances(tmp_path: Path) -> None:
    expected = make_inputs(tmp_path / "in")
    result = batchform(
        "transform",
        "--model",
        str(ECHO),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
        *COMMON,
        home=tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr
    assert read_tree(tmp_path / "out") == expected
    assert "Completed" in result.stderr
    assert "MaxConcurrentTransforms=4, MaxPayloadInMB=1, BatchStrategy=MULTI_RECORD" in (
        (tmp_path / "home" / "jobs").joinpath(_only_job(tmp_path / "home"), "log").read_text()
    )


def test_job_summary_describes_the_run(tmp_path: Path) -> None:
    make_inputs(tmp_path / "in")
    result = batchform(
        "transform",
        "--model",
        str(ECHO),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
        *COMMON,
        "--name",
        "summarised",
        home=tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "_batchform" / "job_summary.json").read_text())
    assert summary["job"] == "summarised" and summary["status"] == "Completed"
    assert summary["spec"]["TransformJobName"] == "summarised"
    assert len(summary["spec_sha256"]) == 64 and len(summary["model"]["sha256"]) == 64
    assert summary["settings"] == {
        "MaxConcurrentTransforms": 4,
        "MaxPayloadInMB": 1,
        "BatchStrategy": "MultiRecord",
    }
    by_key = {entry["key"]: entry for entry in summary["objects"]}
    assert by_key["a.csv"]["records"] == 40000 and by_key["empty.csv"]["records"] == 0
    assert summary["totals"]["records"] == 40000 + 3 + 20000
    assert summary["totals"]["latency_ms"]["p50"] > 0


def _only_job(home: Path) -> str:
    (job,) = [p.name for p in (home / "jobs").iterdir()]
    return job


def test_failing_object_gets_no_output_and_exit_code_is_non_zero(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.csv").write_bytes(b"a,b\nc,d\n")
    (tmp_path / "in" / "bad.csv").write_bytes(b"a,b\nFAIL,x\n")
    (tmp_path / "in" / "good2.csv").write_bytes(b"e\n")
    result = batchform(
        "transform",
        "--model",
        str(FAILING),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
        *COMMON,
        "--max-retries",
        "0",
        home=tmp_path / "home",
    )
    assert result.returncode == 1
    assert read_tree(tmp_path / "out") == {"good.csv.out": b"A,B\nC,D\n", "good2.csv.out": b"E\n"}
    assert "bad.csv" in result.stderr and "found the FAIL marker" in result.stderr


def test_spec_file_with_manifest_and_gzip(tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "x.csv.gz").write_bytes(gzip.compress(rows(0, 5000)))
    (tmp_path / "in" / "sub" / "y.csv.gz").write_bytes(gzip.compress(rows(1, 10)))
    (tmp_path / "in" / "ignored.csv.gz").write_bytes(gzip.compress(b"no\n"))
    manifest = [{"prefix": str(tmp_path / "in") + "/"}, "sub/y.csv.gz", "x.csv.gz"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    spec = {
        "TransformJobName": "from-spec",
        "ModelName": "echo",
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "ManifestFile",
                    "S3Uri": str(tmp_path / "manifest.json"),
                }
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
            "CompressionType": "Gzip",
        },
        "TransformOutput": {"S3OutputPath": str(tmp_path / "out"), "AssembleWith": "Line"},
        "BatchStrategy": "SingleRecord",
        "MaxConcurrentTransforms": 4,
    }
    (tmp_path / "job.yaml").write_text(json.dumps(spec))
    result = batchform(
        "transform",
        "--spec",
        str(tmp_path / "job.yaml"),
        "--model",
        str(ECHO),
        home=tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr
    assert read_tree(tmp_path / "out") == {
        "x.csv.gz.out": rows(0, 5000),
        "sub/y.csv.gz.out": rows(1, 10),
    }


def test_invalid_request_names_the_field(tmp_path: Path) -> None:
    result = batchform(
        "transform",
        "--model",
        str(ECHO),
        "--input",
        str(tmp_path),
        "--output",
        str(tmp_path / "out"),
        "--max-payload",
        "60",
        "--concurrency",
        "4",
        home=tmp_path / "home",
    )
    assert result.returncode == 2
    assert "maxPayloadInMB" in result.stderr and "100 MB" in result.stderr


def test_transform_on_s3(tmp_path: Path, s3_bucket: str, s3_client: Any) -> None:
    bucket = s3_bucket.removeprefix("s3://")
    for key, body in {"in/a.csv": rows(0, 30000), "in/nested/b.csv": rows(3, 5)}.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    result = batchform(
        "transform",
        "--model",
        str(ECHO),
        "--input",
        f"{s3_bucket}/in/",
        "--output",
        f"{s3_bucket}/out",
        *COMMON,
        home=tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="out/")
    keys = sorted(
        item["Key"] for item in listed.get("Contents", []) if "/_batchform/" not in item["Key"]
    )
    assert keys == ["out/a.csv.out", "out/nested/b.csv.out"]
    body = s3_client.get_object(Bucket=bucket, Key="out/a.csv.out")["Body"].read()
    assert body == rows(0, 30000)


@pytest.mark.parametrize("strategy", ["SingleRecord", "MultiRecord"])
def test_s3_gzip_manifest_failure_mix(
    tmp_path: Path, s3_bucket: str, s3_client: Any, strategy: str
) -> None:
    bucket = s3_bucket.removeprefix("s3://")
    s3_client.put_object(Bucket=bucket, Key="in/ok.csv.gz", Body=gzip.compress(rows(0, 2000)))
    s3_client.put_object(
        Bucket=bucket,
        Key="in/deep/bad.csv.gz",
        Body=gzip.compress(rows(0, 100) + b"FAIL\n" + rows(0, 100)),
    )
    manifest = [{"prefix": f"{s3_bucket}/in/"}, "ok.csv.gz", "deep/bad.csv.gz"]
    s3_client.put_object(Bucket=bucket, Key="manifest.json", Body=json.dumps(manifest).encode())
    result = batchform(
        "transform",
        "--model",
        str(FAILING),
        "--input",
        f"{s3_bucket}/manifest.json",
        "--manifest",
        "--output",
        f"{s3_bucket}/out/",
        "--compression",
        "Gzip",
        "--content-type",
        "text/csv",
        "--split-type",
        "Line",
        "--strategy",
        strategy,
        "--concurrency",
        "4",
        "--instances",
        "2",
        "--max-retries",
        "0",
        home=tmp_path / "home",
    )
    assert result.returncode == 1
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="out/")
    assert sorted(
        item["Key"] for item in listed.get("Contents", []) if "/_batchform/" not in item["Key"]
    ) == ["out/ok.csv.gz.out"]
    body = s3_client.get_object(Bucket=bucket, Key="out/ok.csv.gz.out")["Body"].read()
    assert body == rows(0, 2000).upper()
    assert "deep/bad.csv.gz" in result.stderr


def test_isolation_with_real_workers_writes_good_records_and_dead_letters_bad_ones(
    tmp_path: Path,
) -> None:
    rng = __import__("random").Random(11)
    bad = sorted(rng.sample(range(120_000), 1200))  # 1 % at random positions
    marked = set(bad)
    lines = [b"FAIL,%d\n" % i if i in marked else b"%d,%d\n" % (i, i * 3) for i in range(120_000)]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_bytes(b"".join(lines))
    done = batchform(
        "transform", "--model", str(FAILING), "--input", str(tmp_path / "in"),
        "--output", str(tmp_path / "out"), "--content-type", "text/csv",
        "--split-type", "Line", "--max-payload", "1", "--concurrency", "2",
        "--max-retries", "0", "--on-error", "isolate", "--max-errors", "1%",
        home=tmp_path / "home",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = b"".join(line for i, line in enumerate(lines) if i not in marked)
    assert (tmp_path / "out" / "a.csv.out").read_bytes() == expected  # echoes, upper-cased
    errors = tmp_path / "out" / "_batchform" / "errors" / "a.csv.jsonl"
    letters = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [letter["record_index"] for letter in letters] == bad
    assert {letter["status"] for letter in letters} == {500}
    offsets = [sum(len(line) for line in lines[:i]) for i in bad[:3]]
    assert [letter["byte_offset"] for letter in letters[:3]] == offsets
    summary = json.loads((tmp_path / "out" / "_batchform" / "job_summary.json").read_text())
    assert summary["totals"]["bad_records"] == 1200
    assert summary["totals"]["records"] == 120_000 - 1200
