"""Reading inputs (gzip streaming) and writing outputs atomically, locally and in memory."""

from __future__ import annotations

import gzip
import importlib.util
import io
import uuid
from pathlib import Path
from types import ModuleType
from typing import cast

import crc32c
import fsspec
import pytest

from batchform.errors import ConfigurationError, StorageError
from batchform.spec.enums import CompressionType
from batchform.storage import (
    InputObject,
    atomic_output,
    filesystem,
    open_input,
    output_url,
    read_bytes,
    remove,
    write_bytes,
)

GZIP = CompressionType.GZIP


def input_at(path: Path) -> InputObject:
    return InputObject(url=str(path), key=path.name, size=path.stat().st_size)


def read_all(obj: InputObject, compression: CompressionType, chunk: int = 1000) -> bytes:
    with open_input(obj, compression) as reader:
        return b"".join(iter(lambda: reader.read(chunk), b""))


def test_plain_input_is_read_as_is(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"1,2\n3,4\n")
    assert read_all(input_at(tmp_path / "a.csv"), CompressionType.NONE) == b"1,2\n3,4\n"


def test_gzip_input_is_decompressed_while_streaming(tmp_path: Path) -> None:
    body = b"".join(b"%d,%d\n" % (i, i * i) for i in range(50_000))
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(body))
    obj = input_at(tmp_path / "a.csv.gz")
    with open_input(obj, GZIP) as reader:
        first = reader.read(10)
        assert first == body[:10]  # available before the rest is decompressed
        assert first + reader.read() == body


def test_multi_member_gzip_reads_as_one_stream(tmp_path: Path) -> None:
    (tmp_path / "m.gz").write_bytes(gzip.compress(b"first\n") + gzip.compress(b"second\n"))
    assert read_all(input_at(tmp_path / "m.gz"), GZIP) == b"first\nsecond\n"


def test_reader_supports_readline_and_readinto(tmp_path: Path) -> None:
    (tmp_path / "l.gz").write_bytes(gzip.compress(b"one\ntwo\n"))
    with open_input(input_at(tmp_path / "l.gz"), "Gzip") as reader:
        assert reader.readline() == b"one\n"
        buffer = bytearray(10)
        # readinto is there for callers that reuse buffers, though BinaryIO does not declare it
        assert cast(io.BufferedIOBase, reader).readinto(buffer) == 4
        assert bytes(buffer[:4]) == b"two\n"


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: b"not gzip at all", "Not a gzipped file"),
        (lambda data: data[: len(data) // 2], "ended before the end-of-stream"),
        (lambda data: data[:12] + b"\xff" * 40 + data[52:], ""),
        (lambda data: data[:-8] + b"\0\0\0\0" + data[-4:], "CRC check failed"),
    ],
    ids=["not-gzip", "truncated", "corrupt-deflate", "bad-crc"],
)
def test_corrupt_gzip_is_a_storage_error_naming_the_object(
    tmp_path: Path, damage: object, reason: str
) -> None:
    data = gzip.compress(bytes(range(256)) * 400)
    (tmp_path / "bad.gz").write_bytes(damage(data))  # type: ignore[operator]
    obj = input_at(tmp_path / "bad.gz")
    with pytest.raises(StorageError, match="corrupt gzip data at compressed offset") as caught:
        read_all(obj, GZIP)
    assert caught.value.url == obj.url
    assert reason in str(caught.value)


def test_opening_a_missing_input_is_a_storage_error(tmp_path: Path) -> None:
    obj = InputObject(url=str(tmp_path / "gone.csv"), key="gone.csv", size=None)
    with pytest.raises(StorageError, match="no such object") as caught:
        open_input(obj, CompressionType.NONE)
    assert caught.value.url == obj.url


def test_atomic_output_writes_the_whole_file_and_creates_folders(tmp_path: Path) -> None:
    target = tmp_path / "out" / "sub" / "a.csv.out"
    with atomic_output(str(target)) as file:
        file.write(b"part 1\n")
        file.write(b"part 2\n")
        assert not target.exists()  # nothing visible until the block ends
    assert target.read_bytes() == b"part 1\npart 2\n"
    assert [p.name for p in target.parent.iterdir()] == ["a.csv.out"]


def test_atomic_output_replaces_an_existing_output(tmp_path: Path) -> None:
    target = tmp_path / "a.out"
    target.write_bytes(b"old")
    with atomic_output(str(target)) as file:
        file.write(b"new")
    assert target.read_bytes() == b"new"


def test_atomic_output_leaves_no_file_and_no_temp_on_exception(tmp_path: Path) -> None:
    target = tmp_path / "out" / "a.out"
    with pytest.raises(KeyError, match="model failed"), atomic_output(str(target)) as file:
        file.write(b"half of it")
        raise KeyError("model failed")
    assert list((tmp_path / "out").iterdir()) == []


def test_atomic_output_keeps_the_old_output_when_rewriting_fails(tmp_path: Path) -> None:
    target = tmp_path / "a.out"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(str(target)) as file:
        file.write(b"new")
        raise RuntimeError
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.out"]


def test_atomic_output_into_an_unwritable_place_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    url = f"{tmp_path}/file/a.out"  # a file where a folder should be
    with pytest.raises(StorageError) as caught, atomic_output(url):
        pass
    assert caught.value.url == url


def test_closing_the_writer_early_does_not_commit(tmp_path: Path) -> None:
    target = tmp_path / "a.out"
    with pytest.raises(ValueError), atomic_output(str(target)) as file:
        file.write(b"x")
        file.close()
        raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_on_a_store_that_commits_on_close_leaves_nothing_on_error() -> None:
    url = f"memory://batchform-test-{uuid.uuid4().hex}/a.out"
    with pytest.raises(KeyError), atomic_output(url) as file:
        file.write(b"half")
        raise KeyError
    fs, path = filesystem(url)
    assert not fs.exists(path)
    write_bytes(url, b"whole")
    assert read_bytes(url) == b"whole"
    remove(url)


def test_write_read_and_remove_round_trip(tmp_path: Path) -> None:
    url = f"{tmp_path}/spec/job.json"
    write_bytes(url, b"{}")
    assert read_bytes(url) == b"{}"
    remove(url)
    remove(url)  # already gone is fine
    assert not (tmp_path / "spec" / "job.json").exists()


def test_reading_a_missing_object_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="read failed: no such object"):
        read_bytes(f"{tmp_path}/none")


@pytest.mark.parametrize(
    ("output_path", "key", "expected"),
    [
        ("s3://b/out", "a.csv", "s3://b/out/a.csv.out"),
        ("s3://b/out/", "sub/a.csv", "s3://b/out/sub/a.csv.out"),
        ("out//", "/a.csv", "out/a.csv.out"),
    ],
)
def test_output_url_joins_with_exactly_one_slash(output_path: str, key: str, expected: str) -> None:
    assert output_url(output_path, key) == expected


def test_plain_paths_and_file_urls_are_the_local_filesystem(tmp_path: Path) -> None:
    local = fsspec.filesystem("file")
    assert filesystem(str(tmp_path)) == (local, str(tmp_path))
    assert filesystem(f"file://{tmp_path}") == (local, str(tmp_path))


def test_unknown_protocol_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unsupported storage URL"):
        filesystem("nosuchproto://bucket/key")


def test_s3_endpoint_comes_from_the_s3_specific_variable_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2")
    fs, path = filesystem("s3://bucket/key")
    assert fs.client_kwargs["endpoint_url"] == "http://127.0.0.1:2"
    assert path == "bucket/key"
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    assert filesystem("s3://bucket/key")[0].client_kwargs["endpoint_url"] == "http://127.0.0.1:1"


def test_s3_without_s3fs_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleType | None:
        return None if name == "s3fs" else real_find_spec(name, package)  # type: ignore[return-value]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigurationError, match=r"pip install 'batchform\[s3\]'"):
        filesystem("s3://bucket/key")


def test_append_object_copies_in_the_kernel_after_buffered_bytes(tmp_path: Path) -> None:
    from batchform.storage import append_object, atomic_output, object_crc32c

    part = tmp_path / "part.out"
    part.write_bytes(b"0123456789" * 100_000)
    target = tmp_path / "whole.out"
    with atomic_output(str(target)) as sink:
        sink.write(b"head:")
        assert append_object(sink, str(part)) == 1_000_000
        sink.write(b":tail")
        assert append_object(sink, str(part)) == 1_000_000
    data = part.read_bytes()
    assert target.read_bytes() == b"head:" + data + b":tail" + data
    assert object_crc32c(str(target)) == crc32c.crc32c(target.read_bytes())


def test_join_objects_makes_the_first_object_the_whole(tmp_path: Path) -> None:
    from batchform.errors import StorageError
    from batchform.storage import join_objects

    parts = [tmp_path / f"part-{i}.out" for i in range(3)]
    for index, part in enumerate(parts):
        part.write_bytes(bytes([65 + index]) * (100_000 + index))
    target = tmp_path / "out" / "whole.out"
    assert join_objects([str(p) for p in parts], str(target)) == [100_000, 100_001, 100_002]
    assert target.read_bytes() == b"A" * 100_000 + b"B" * 100_001 + b"C" * 100_002
    assert not parts[0].exists() and parts[1].exists()  # the first one became the whole

    parts[0].write_bytes(b"first\n")
    with pytest.raises(StorageError):
        join_objects([str(parts[0]), str(tmp_path / "missing.out")], str(tmp_path / "x.out"))
    assert parts[0].read_bytes() == b"first\n"  # cut back, as its ledger entry says
    assert not (tmp_path / "x.out").exists()
