"""SageMaker manifest files, parsed and checked without touching storage.

A manifest is a JSON array: ``[{"prefix": "s3://bucket/some/prefix/"}, "rel/key1", ...]``.
Each entry's object is ``prefix + key`` (plain concatenation, as SageMaker does) and its
output is named after the relative key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from batchform.errors import StorageError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    index: int  # position in the manifest's JSON array; 0 is the {"prefix": ...} element
    key: str
    url: str


def parse_manifest(data: bytes, manifest_url: str) -> list[ManifestEntry]:
    """Every entry of the manifest in manifest order, duplicates kept.

    Keys that would reach outside the prefix are rejected: a manifest must not be a
    way to read objects the prefix does not cover.
    """
    document = _decode(data, manifest_url)
    prefix = _prefix_of(document, manifest_url)
    return [
        _entry(index, document[index], prefix, manifest_url) for index in range(1, len(document))
    ]


def _decode(data: bytes, manifest_url: str) -> list[object]:
    try:
        document = json.loads(data)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno} (char {exc.pos})"
        raise StorageError(manifest_url, f"malformed manifest JSON at {where}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise StorageError(manifest_url, f"manifest is not UTF-8 text: {exc}") from exc
    if not isinstance(document, list):
        raise StorageError(manifest_url, _SHAPE)
    return document


_SHAPE = 'a manifest must be a JSON array whose first element is {"prefix": "<url>"}'


def _prefix_of(document: list[object], manifest_url: str) -> str:
    head = document[0] if document else None
    prefix = head.get("prefix") if isinstance(head, dict) else None
    if not isinstance(prefix, str) or not prefix:
        raise StorageError(manifest_url, _SHAPE)
    return prefix


def _entry(index: int, item: object, prefix: str, manifest_url: str) -> ManifestEntry:
    if not isinstance(item, str):
        kind = type(item).__name__
        raise StorageError(manifest_url, f"manifest entry {index} must be a key string, not {kind}")
    reason = _escape_reason(item)
    if reason is not None:
        raise StorageError(manifest_url, f"manifest entry {index} {item!r} {reason}")
    return ManifestEntry(index, item, prefix + item)


def _escape_reason(key: str) -> str | None:
    """Why `key` is not a key relative to the prefix, or None when it is."""
    if not key:
        return "is empty"
    if key.startswith("/"):
        return "is an absolute path, not a key relative to the prefix"
    if _SCHEME.match(key):
        return "is a URL, not a key relative to the prefix"
    if ".." in key.split("/"):
        return "escapes the prefix with a '..' segment"
    return None
