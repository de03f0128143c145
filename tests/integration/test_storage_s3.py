"""Storage against a real S3-compatible server on loopback (moto, in its own process)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from typing import Any

import pytest

from batchform.errors import StorageError
from batchform.spec.enums import CompressionType, S3DataType
from batchform.storage import (
    atomic_output,
    list_inputs,
    open_input,
    read_bytes,
    remove,
    write_bytes,
)

PREFIX = S3DataType.S3_PREFIX


def bucket_name(bucket: str) -> str:
    return bucket.removeprefix("s3://")


def put(client: Any, bucket: str, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        client.put_object(Bucket=bucket_name(bucket), Key=key, Body=body)


def stored_keys(client: Any, bucket: str) -> list[str]:
    listing = client.list_objects_v2(Bucket=bucket_name(bucket))
    return [item["Key"] for item in listing.get("Contents", [])]


def pending_uploads(client: Any, bucket: str) -> list[Any]:
    uploads: list[Any] = client.list_multipart_uploads(Bucket=bucket_name(bucket)).get(
        "Uploads", []
    )
    return uploads


@pytest.fixture
def data(s3_client: Any, s3_bucket: str) -> str:
    put(
        s3_client,
        s3_bucket,
        {
            "data/train.csv": b"1\n",
            "data/train_2.csv": b"22\n",
            "data/train/a.csv": b"333\n",
            "data/train/deep/b.csv": b"4444\n",
            "data/test.csv": b"5\n",
            "data/folder-marker/": b"",
            "database.csv": b"6\n",
        },
    )
    return s3_bucket


def test_folder_prefix_lists_recursively_in_key_order(data: str) -> None:
    objects = list_inputs(f"{data}/data/", PREFIX)
    assert [obj.key for obj in objects] == [
        "test.csv",
        "train.csv",
        "train/a.csv",
        "train/deep/b.csv",
        "train_2.csv",
    ]
    assert objects[2].url == f"{data}/data/train/a.csv"
    assert objects[2].size == 4


def test_partial_name_prefix_matches_like_s3(data: str) -> None:
    objects = list_inputs(f"{data}/data/tr", PREFIX)
    assert [obj.key for obj in objects] == [
        "train.csv",
        "train/a.csv",
        "train/deep/b.csv",
        "train_2.csv",
    ]


def test_bucket_prefix_lists_the_whole_bucket_with_full_keys(data: str) -> None:
    keys = [obj.key for obj in list_inputs(data, PREFIX)]
    assert keys == [obj.key for obj in list_inputs(f"{data}/", PREFIX)]
    assert keys[0] == "data/test.csv"
    assert keys[-1] == "database.csv"


def test_single_object_prefix(data: str) -> None:
    [obj] = list_inputs(f"{data}/data/test.csv", PREFIX)
    assert (obj.key, obj.size) == ("test.csv", 2)


def test_objects_written_after_a_listing_are_seen_by_the_next(data: str, s3_client: Any) -> None:
    assert len(list_inputs(f"{data}/data/", PREFIX)) == 5
    put(s3_client, data, {"data/zz.csv": b"new"})
    assert list_inputs(f"{data}/data/", PREFIX)[-1].key == "zz.csv"


def test_no_match_is_an_error_naming_the_prefix(data: str) -> None:
    with pytest.raises(StorageError, match="no objects match prefix"):
        list_inputs(f"{data}/data/nothing", PREFIX)


def test_missing_bucket_is_a_storage_error(s3_env: str) -> None:
    with pytest.raises(StorageError, match="listing failed"):
        list_inputs("s3://batchform-no-such-bucket/data/", PREFIX)


def test_manifest_on_s3(data: str, s3_client: Any) -> None:
    manifest = [{"prefix": f"{data}/data/"}, "train/deep/b.csv", "test.csv"]
    put(s3_client, data, {"manifests/in.manifest": json.dumps(manifest).encode()})
    objects = list_inputs(f"{data}/manifests/in.manifest", S3DataType.MANIFEST_FILE)
    assert [(obj.url, obj.key, obj.size) for obj in objects] == [
        (f"{data}/data/train/deep/b.csv", "train/deep/b.csv", 5),
        (f"{data}/data/test.csv", "test.csv", 2),
    ]


def test_manifest_naming_a_missing_key_is_an_error(data: str, s3_client: Any) -> None:
    manifest = [{"prefix": f"{data}/data/"}, "test.csv", "gone.csv"]
    put(s3_client, data, {"in.manifest": json.dumps(manifest).encode()})
    with pytest.raises(StorageError, match=r"manifest entry 2 'gone\.csv'"):
        list_inputs(f"{data}/in.manifest", S3DataType.MANIFEST_FILE)


def test_gzip_objects_stream_decompressed(s3_client: Any, s3_bucket: str) -> None:
    body = b"".join(b"%d\n" % i for i in range(200_000))
    put(s3_client, s3_bucket, {"in/a.csv.gz": gzip.compress(body[:1000]) + gzip.compress(body)})
    [obj] = list_inputs(f"{s3_bucket}/in/", PREFIX)
    with open_input(obj, CompressionType.GZIP) as reader:
        assert reader.read(1000) == body[:1000]
        assert reader.read() == body


def test_corrupt_gzip_on_s3_is_a_storage_error(s3_client: Any, s3_bucket: str) -> None:
    put(s3_client, s3_bucket, {"in/a.gz": gzip.compress(b"x" * 10_000)[:-20]})
    [obj] = list_inputs(f"{s3_bucket}/in/", PREFIX)
    with (
        pytest.raises(StorageError, match="corrupt gzip data"),
        open_input(obj, CompressionType.GZIP) as reader,
    ):
        reader.read()


def test_atomic_output_commits_on_success(s3_client: Any, s3_bucket: str) -> None:
    with atomic_output(f"{s3_bucket}/out/a.csv.out") as file:
        file.write(b"1\n")
        file.write(b"2\n")
        assert stored_keys(s3_client, s3_bucket) == []
    assert read_bytes(f"{s3_bucket}/out/a.csv.out") == b"1\n2\n"


def test_atomic_output_commits_nothing_on_exception(s3_client: Any, s3_bucket: str) -> None:
    with pytest.raises(KeyError), atomic_output(f"{s3_bucket}/out/a.out") as file:
        file.write(b"half")
        raise KeyError("model failed")
    assert stored_keys(s3_client, s3_bucket) == []


def test_failed_large_output_aborts_its_multipart_upload(s3_client: Any, s3_bucket: str) -> None:
    with pytest.raises(RuntimeError), atomic_output(f"{s3_bucket}/out/big.out") as file:
        for _ in range(3):
            file.write(b"x" * 2**22)  # 12 MiB: at least one part is already uploaded
        assert pending_uploads(s3_client, s3_bucket) != []
        raise RuntimeError("stopped")
    assert stored_keys(s3_client, s3_bucket) == []
    assert pending_uploads(s3_client, s3_bucket) == []


def test_large_output_is_written_in_parts(s3_client: Any, s3_bucket: str) -> None:
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with atomic_output(f"{s3_bucket}/out/big.out") as file:
        for _ in range(20):
            file.write(chunk)
    head = s3_client.head_object(Bucket=bucket_name(s3_bucket), Key="out/big.out")
    assert head["ContentLength"] == 20 * len(chunk)
    assert head["ETag"].strip('"').endswith("-3")  # 8 + 8 + 4 MiB parts
    assert read_bytes(f"{s3_bucket}/out/big.out") == chunk * 20


def test_write_read_remove_round_trip(s3_client: Any, s3_bucket: str) -> None:
    url = f"{s3_bucket}/specs/job.json"
    write_bytes(url, b"{}")
    assert read_bytes(url) == b"{}"
    remove(url)
    remove(url)  # already gone is fine
    assert stored_keys(s3_client, s3_bucket) == []


def test_child_processes_reach_the_same_server(s3_bucket: str) -> None:
    write_bytes(f"{s3_bucket}/hello.txt", b"from the parent")
    script = "import sys; from batchform.storage import read_bytes; print(read_bytes(sys.argv[1]))"
    child = subprocess.run(
        [sys.executable, "-c", script, f"{s3_bucket}/hello.txt"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert child.stdout.strip() == b"b'from the parent'"
