"""Which objects a job reads, on the local filesystem: S3Prefix and ManifestFile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchform.errors import ConfigurationError, StorageError
from batchform.spec.enums import S3DataType
from batchform.storage import InputObject, atomic_output, list_inputs
from batchform.storage.manifest import parse_manifest

PREFIX = S3DataType.S3_PREFIX
MANIFEST = S3DataType.MANIFEST_FILE


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """data/ with files whose names share prefixes, nested folders and a sibling."""
    files = {
        "data/train.csv": b"1\n",
        "data/train_2.csv": b"22\n",
        "data/train/a.csv": b"333\n",
        "data/train/deep/b.csv": b"4444\n",
        "data/test.csv": b"5\n",
        "database.csv": b"6\n",
    }
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(body)
    return tmp_path / "data"


def keys(objects: list[InputObject]) -> list[str]:
    return [obj.key for obj in objects]


def test_folder_prefix_lists_every_file_below_it_recursively_in_key_order(data: Path) -> None:
    objects = list_inputs(f"{data}/", PREFIX)
    assert keys(objects) == [
        "test.csv",
        "train.csv",
        "train/a.csv",
        "train/deep/b.csv",
        "train_2.csv",
    ]


def test_partial_name_prefix_matches_files_and_folders_starting_with_it(data: Path) -> None:
    objects = list_inputs(f"{data}/tra", PREFIX)
    assert keys(objects) == ["train.csv", "train/a.csv", "train/deep/b.csv", "train_2.csv"]


def test_local_folder_named_without_its_slash_means_the_folder(data: Path) -> None:
    objects = list_inputs(str(data), PREFIX)
    assert "database.csv" not in keys(objects)
    assert keys(objects)[:3] == ["test.csv", "train.csv", "train/a.csv"]
    assert keys(list_inputs(f"file://{data}/train", PREFIX)) == ["a.csv", "deep/b.csv"]


def test_single_file_prefix_yields_that_file_named_by_its_basename(data: Path) -> None:
    [obj] = list_inputs(f"{data}/test.csv", PREFIX)
    assert (obj.url, obj.key, obj.size) == (f"{data}/test.csv", "test.csv", 2)
    assert obj.version == str((data / "test.csv").stat().st_mtime)


def test_listed_urls_open_the_objects_and_sizes_are_right(data: Path) -> None:
    objects = list_inputs(f"{data}/train/", PREFIX)
    assert [(Path(obj.url).read_bytes(), obj.size) for obj in objects] == [
        (b"333\n", 4),
        (b"4444\n", 5),
    ]


def test_file_url_lists_like_a_plain_path(data: Path) -> None:
    objects = list_inputs(f"file://{data}/train_", PREFIX)
    assert keys(objects) == ["train_2.csv"]


def test_accepts_the_data_type_as_its_api_spelling(data: Path) -> None:
    assert keys(list_inputs(f"{data}/test", "S3Prefix")) == ["test.csv"]


@pytest.mark.parametrize("suffix", ["/nothing", "/train.csv/", "-missing/"])
def test_no_match_is_an_error_naming_the_prefix(data: Path, suffix: str) -> None:
    uri = f"{data}{suffix}"
    with pytest.raises(StorageError, match="no objects match prefix") as caught:
        list_inputs(uri, PREFIX)
    assert caught.value.url == uri


def test_empty_folders_are_not_inputs(tmp_path: Path) -> None:
    (tmp_path / "in" / "empty").mkdir(parents=True)
    (tmp_path / "in" / "x.csv").write_bytes(b"x")
    assert keys(list_inputs(f"{tmp_path}/in/", PREFIX)) == ["x.csv"]


def test_outputs_being_written_are_never_listed(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "done.out").write_bytes(b"done")
    with atomic_output(f"{tmp_path}/out/pending.out") as file:
        file.write(b"half")
        assert len(list((tmp_path / "out").iterdir())) == 2  # the temp file is there
        assert keys(list_inputs(f"{tmp_path}/out/", PREFIX)) == ["done.out"]


def test_augmented_manifest_is_refused_as_not_supported(data: Path) -> None:
    with pytest.raises(ConfigurationError, match="not supported"):
        list_inputs(f"{data}/", S3DataType.AUGMENTED_MANIFEST_FILE)


def write_manifest(folder: Path, document: object) -> str:
    path = folder / "input.manifest"
    path.write_text(json.dumps(document))
    return str(path)


def test_manifest_lists_entries_in_manifest_order_with_their_relative_keys(data: Path) -> None:
    manifest = write_manifest(data.parent, [{"prefix": f"{data}/"}, "train/a.csv", "test.csv"])
    listed = [(o.url, o.key, o.size) for o in list_inputs(manifest, MANIFEST)]
    assert listed == [
        (f"{data}/train/a.csv", "train/a.csv", 4),
        (f"{data}/test.csv", "test.csv", 2),
    ]


def test_manifest_keeps_duplicates(data: Path) -> None:
    manifest = write_manifest(data.parent, [{"prefix": f"{data}/"}, "test.csv", "test.csv"])
    assert keys(list_inputs(manifest, MANIFEST)) == ["test.csv", "test.csv"]


def test_manifest_prefix_is_concatenated_not_joined(data: Path) -> None:
    manifest = write_manifest(data.parent, [{"prefix": f"{data}/train"}, ".csv", "_2.csv"])
    assert [obj.url for obj in list_inputs(manifest, MANIFEST)] == [
        f"{data}/train.csv",
        f"{data}/train_2.csv",
    ]


@pytest.mark.parametrize(
    "key",
    ["../database.csv", "train/../../database.csv", "/etc/passwd", "s3://other/key", ""],
)
def test_manifest_keys_escaping_the_prefix_are_rejected_by_index(data: Path, key: str) -> None:
    manifest = write_manifest(data.parent, [{"prefix": f"{data}/"}, "test.csv", key])
    with pytest.raises(StorageError, match="manifest entry 2 ") as caught:
        list_inputs(manifest, MANIFEST)
    assert caught.value.url == manifest


def test_manifest_naming_a_missing_object_is_an_error_naming_the_key(data: Path) -> None:
    manifest = write_manifest(data.parent, [{"prefix": f"{data}/"}, "test.csv", "gone.csv"])
    with pytest.raises(StorageError, match=r"manifest entry 2 'gone.csv': no object at"):
        list_inputs(manifest, MANIFEST)


def test_manifest_naming_a_folder_is_an_error(data: Path) -> None:
    manifest = write_manifest(data.parent, [{"prefix": f"{data}/"}, "train"])
    with pytest.raises(StorageError, match="is a folder"):
        list_inputs(manifest, MANIFEST)


def test_malformed_manifest_json_names_the_position(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.manifest"
    manifest.write_bytes(b'[{"prefix": "s3://b/"},\n "a.csv" "b.csv"]')
    with pytest.raises(StorageError, match=r"malformed manifest JSON at line 2 column 10"):
        list_inputs(str(manifest), MANIFEST)


@pytest.mark.parametrize(
    "document",
    [{"prefix": "s3://b/"}, [], ["a.csv"], [{"prefix": 3}], [{"prefix": "s3://b/"}, 7]],
)
def test_manifest_of_the_wrong_shape_is_rejected(document: object) -> None:
    with pytest.raises(StorageError, match="manifest"):
        parse_manifest(json.dumps(document).encode(), "m.manifest")


def test_manifest_without_entries_is_an_error(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, [{"prefix": f"{tmp_path}/"}])
    with pytest.raises(StorageError, match="lists no objects"):
        list_inputs(manifest, MANIFEST)


def test_missing_manifest_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no such object"):
        list_inputs(f"{tmp_path}/none.manifest", MANIFEST)


def test_batchforms_own_files_beside_outputs_are_not_inputs(tmp_path: Path) -> None:
    """Chaining jobs (PCA's output as DBSCAN's input) reads the outputs only."""
    out = tmp_path / "out"
    (out / "_batchform" / "errors").mkdir(parents=True)
    (out / "part.csv.out").write_text("1\n")
    (out / "_batchform" / "job_summary.json").write_text("{}")
    (out / "_batchform" / "errors" / "part.csv.jsonl").write_text("{}\n")
    keys = [obj.key for obj in list_inputs(f"{out}/", "S3Prefix")]
    assert keys == ["part.csv.out"]
