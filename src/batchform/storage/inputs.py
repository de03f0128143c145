"""Which objects a transform job reads: S3Prefix listings and manifest files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import fsspec

from batchform.errors import ConfigurationError, StorageError
from batchform.spec.enums import S3DataType
from batchform.storage.filesystems import (
    filesystem,
    is_partial,
    is_s3,
    read_bytes,
    translate_errors,
    url_of,
)
from batchform.storage.manifest import ManifestEntry, parse_manifest


@dataclass(frozen=True, slots=True)
class InputObject:
    """One object to transform.

    `url` is what to open; `key` is the object's key relative to the input prefix's
    "folder" and names its output (`<output>/<key>.out`); `size` is in bytes, when known;
    `version` tells one state of the object from another (an ETag, or the modification
    time locally), so a resumed job can refuse inputs that changed under it.
    """

    url: str
    key: str
    size: int | None
    version: str | None = None
    #: A byte range of the object (one part of a big line-split object); end None: all.
    start: int = 0
    end: int | None = None


def list_inputs(uri: str, data_type: S3DataType | str) -> list[InputObject]:
    """The objects a job with S3Uri `uri` and S3DataType `data_type` reads, in order."""
    data_type = S3DataType(data_type)
    if data_type is S3DataType.S3_PREFIX:
        return _list_prefix(_local_folder_as_prefix(uri))
    if data_type is S3DataType.MANIFEST_FILE:
        return _list_manifest(uri)
    raise ConfigurationError(
        "S3DataType AugmentedManifestFile is not supported yet; use S3Prefix or ManifestFile"
    )


def _list_prefix(uri: str) -> list[InputObject]:
    """Every object whose key starts with `uri` as a string, recursively, sorted by key.

    As on S3, 's3://b/data/tr' matches data/train.csv and data/tr/x.csv; keys are taken
    relative to the prefix up to its last '/', so outputs keep the input's sub-folders.
    """
    folder_url, stem = _split_prefix(uri)
    fs, folder = filesystem(folder_url)
    base = folder if folder.endswith("/") else folder + "/"
    with translate_errors(uri, "listing"):
        found = _find_s3(fs, folder, stem) if is_s3(fs) else _find_walking(fs, folder, base + stem)
    objects = [
        InputObject(url_of(fs, name), name[len(base) :], _size(info), _version(info))
        for name, info in found.items()
        # A job reading another job's output (PCA's as DBSCAN's input) sees the outputs,
        # not the summary and dead letters batchform keeps beside them.
        if _is_input(name, info, base + stem) and not _own_file(name[len(base) :])
    ]
    if not objects:
        raise StorageError(uri, f"no objects match prefix {uri}")
    return sorted(objects, key=lambda obj: obj.key)


def _local_folder_as_prefix(uri: str) -> str:
    """A local folder given without its trailing '/' means the folder, as users expect.

    Object stores keep S3's pure string-prefix rule; on a local disk 'data' naming an
    existing folder would otherwise also match 'data-old.csv' and name outputs 'data/…'.
    """
    path = uri.removeprefix("file://")
    if "://" not in path and not path.endswith("/") and os.path.isdir(path):
        return uri + "/"
    return uri


def _split_prefix(uri: str) -> tuple[str, str]:
    """('folder' URL up to and including the last '/', the partial name after it)."""
    folder, slash, stem = uri.rpartition("/")
    if not slash:
        return ".", uri
    if (folder + slash).endswith("://"):
        return uri + "/", ""  # 's3://bucket': the whole bucket
    return folder + slash, stem


def _find_s3(fs: fsspec.AbstractFileSystem, folder: str, stem: str) -> dict[str, Any]:
    # One server-side prefix listing, never served from s3fs's listing cache, so
    # objects written by other processes since the last listing are seen.
    found: dict[str, Any] = fs.find(folder, prefix=stem, detail=True)
    return found


def _find_walking(fs: fsspec.AbstractFileSystem, folder: str, match: str) -> dict[str, Any]:
    """Files under `folder` whose path starts with `match`, descending only where needed."""
    try:
        entries = fs.ls(folder, detail=True)
    except FileNotFoundError:
        return {}
    found: dict[str, Any] = {}
    for entry in entries:
        name = entry["name"]
        if not name.startswith(match):
            continue
        if entry["type"] == "directory":
            found.update(fs.find(name, detail=True))
        else:
            found[name] = entry
    return found


#: batchform's own files beside a job's outputs (summary, dead letters, parts).
OWN_FOLDER = "_batchform"


def _is_input(name: str, info: dict[str, Any], match: str) -> bool:
    # Zero-byte keys ending in '/' are folder markers made by consoles, not data.
    return (
        info.get("type") == "file"
        and name.startswith(match)
        and not name.endswith("/")
        and not is_partial(name)
    )


def _own_file(key: str) -> bool:
    return OWN_FOLDER in key.split("/")[:-1]


def _size(info: dict[str, Any]) -> int | None:
    size = info.get("size")
    return int(size) if size is not None else None


def _version(info: dict[str, Any]) -> str | None:
    for field in ("ETag", "etag", "mtime", "LastModified", "last_modified", "created"):
        value = info.get(field)
        if value is not None:
            return str(value).strip('"')
    return None


def _list_manifest(uri: str) -> list[InputObject]:
    """The manifest's objects in manifest order (as SageMaker processes them)."""
    entries = parse_manifest(read_bytes(uri), uri)
    if not entries:
        raise StorageError(uri, "the manifest lists no objects")
    return [_manifest_object(uri, entry) for entry in entries]


def _manifest_object(manifest_uri: str, entry: ManifestEntry) -> InputObject:
    fs, path = filesystem(entry.url)
    where = f"manifest entry {entry.index} {entry.key!r}"
    try:
        with translate_errors(entry.url, "reading object information"):
            info = fs.info(path)
    except StorageError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            raise StorageError(manifest_uri, f"{where}: no object at {entry.url}") from exc
        raise
    if info.get("type") != "file":
        raise StorageError(manifest_uri, f"{where}: {entry.url} is a folder, not an object")
    return InputObject(url_of(fs, path), entry.key, _size(info), _version(info))
