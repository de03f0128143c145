"""Which fsspec filesystem holds a URL, and storage failures mapped to StorageError.

URLs are passed through as they are (fsspec style): plain paths and ``file://`` are
local, ``s3://`` goes through s3fs, and any other fsspec protocol works unchanged.
"""

from __future__ import annotations

import importlib.util
import os
import posixpath
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, cast

import fsspec
from fsspec.implementations.local import LocalFileSystem

from batchform.errors import ConfigurationError, StorageError

_S3_PROTOCOLS = frozenset({"s3", "s3a"})

# Outputs still being written carry this in their (hidden) name; listings skip them so
# a job reading another job's output folder never sees a half-written object.
_PARTIAL_MARKER = ".batchform-tmp-"


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem holding `url` and the path of `url` inside it.

    fsspec caches filesystem instances by their arguments, so calling this per object
    is cheap and shares connections; a changed S3 endpoint gives a new instance.
    """
    protocol = fsspec.core.split_protocol(url)[0] or "file"
    options = _s3_options() if protocol in _S3_PROTOCOLS else {}
    try:
        fs, path = fsspec.core.url_to_fs(url or ".", **options)
    except ImportError as exc:
        raise ConfigurationError(f"cannot open {url}: {exc}") from exc
    except ValueError as exc:
        raise ConfigurationError(f"unsupported storage URL {url!r}: {exc}") from exc
    return fs, cast(str, path)


def _s3_options() -> dict[str, Any]:
    if importlib.util.find_spec("s3fs") is None:
        raise ConfigurationError("s3:// URLs need s3fs: pip install 'batchform[s3]'")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    # Not every botocore/aiobotocore pairing reads these variables itself; passing the
    # endpoint explicitly is what makes MinIO or moto on loopback work everywhere.
    return {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def is_s3(fs: fsspec.AbstractFileSystem) -> bool:
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol
    return any(protocol in _S3_PROTOCOLS for protocol in protocols)


def url_of(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The URL to reopen `path` with: a plain path locally, `scheme://path` elsewhere."""
    return path if is_local(fs) else cast(str, fs.unstrip_protocol(path))


def partial_name(name: str) -> str:
    """Hidden, unique name for an output while it is written: '.<name>.batchform-tmp-<random>'."""
    return f".{name}{_PARTIAL_MARKER}{secrets.token_hex(6)}"


def is_partial(path: str) -> bool:
    """Whether `path` names an output batchform has not finished writing."""
    name = posixpath.basename(path)
    return name.startswith(".") and _PARTIAL_MARKER in name


def storage_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean "storage failed" (as opposed to a bug of ours)."""
    # botocore is only ever imported by s3fs: when nobody imported it none of its errors
    # can be in flight, and importing it here would slow down local-only runs.
    boto = sys.modules.get("botocore.exceptions")
    if boto is None:
        return (OSError,)
    return (OSError, boto.ClientError, boto.BotoCoreError)


def storage_failure(url: str, action: str, exc: BaseException) -> StorageError:
    """A StorageError for `exc`, worded for a user rather than a traceback reader."""
    if isinstance(exc, FileNotFoundError):
        return StorageError(url, f"{action} failed: no such object or folder")
    if isinstance(exc, PermissionError):
        return StorageError(url, f"{action} failed: permission denied ({exc})")
    return StorageError(url, f"{action} failed: {type(exc).__name__}: {exc}")


@contextmanager
def translate_errors(url: str, action: str) -> Iterator[None]:
    """Re-raise storage failures inside the block as StorageError naming `url`."""
    try:
        yield
    except storage_errors() as exc:
        raise storage_failure(url, action, exc) from exc


def read_bytes(url: str) -> bytes:
    """The whole object at `url`; for small objects only (manifests, specs)."""
    fs, path = filesystem(url)
    with translate_errors(url, "read"):
        return cast(bytes, fs.cat_file(path))


def remove(url: str) -> None:
    """Delete the object at `url`; an object that is already gone is fine."""
    fs, path = filesystem(url)
    with translate_errors(url, "remove"), suppress(FileNotFoundError):
        fs.rm_file(path)
