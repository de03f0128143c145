"""Buckets and data: the session's default bucket, uploads and downloads.

A bucket is an S3 bucket named as SageMaker names one (`my-bucket`, used as
`s3://my-bucket/...`; `AWS_ENDPOINT_URL_S3` points at MinIO or any S3-compatible
store), or a local folder (an absolute path or `file://` URL), which batchform reads and
writes like a bucket. The default bucket, unless the session is given one, is the
folder `$BATCHFORM_HOME/bucket`.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from pathlib import Path

from batchform.config import home
from batchform.service import filesystem, translate_errors

LOCAL_BUCKET = "bucket"


def default_local_bucket() -> str:
    return str(home() / LOCAL_BUCKET)


def is_local(bucket: str) -> bool:
    return bucket.startswith("file://") or os.path.isabs(bucket)


def bucket_url(bucket: str) -> str:
    """Where a bucket's keys start: `s3://<name>`, or the folder's path."""
    if bucket.startswith("file://"):
        return bucket[len("file://") :].rstrip("/") or "/"
    if is_local(bucket):
        return bucket.rstrip("/") or "/"
    if "/" in bucket or ":" in bucket:
        raise ValueError(
            f"bucket {bucket!r}: give an S3 bucket name (no s3:// and no key) or a local "
            "folder's absolute path"
        )
    return f"s3://{bucket}"


def join_url(base: str, *parts: str | None) -> str:
    """`base` and the non-empty `parts`, one '/' between each (as S3 keys are joined)."""
    tail = [part.strip("/") for part in parts if part and part.strip("/")]
    return "/".join([base.rstrip("/"), *tail]) if tail else base


def ensure_bucket(bucket: str) -> None:
    """Create the bucket (or folder) unless it exists, as the sagemaker SDK does."""
    url = bucket_url(bucket)
    if is_local(bucket):
        Path(url).mkdir(parents=True, exist_ok=True)
        return
    fs, path = filesystem(url)
    with translate_errors(url, "create bucket"):
        if not fs.exists(path):
            fs.mkdir(path)


def upload(path: str, prefix_url: str, callback: Callable[[int], None] | None = None) -> str:
    """A file to `<prefix_url>/<file name>` (returned), or a folder's files under
    `<prefix_url>/<relative path>` (`prefix_url` returned)."""
    source = Path(path)
    if source.is_dir():
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            _put(file, join_url(prefix_url, file.relative_to(source).as_posix()), callback)
        return prefix_url
    if not source.is_file():
        raise FileNotFoundError(f"no such file or folder to upload: {path}")
    target = join_url(prefix_url, source.name)
    _put(source, target, callback)
    return target


def _put(file: Path, url: str, callback: Callable[[int], None] | None) -> None:
    fs, target = filesystem(url)
    with translate_errors(url, "upload"):
        if "file" in _protocols(fs):
            fs.makedirs(posixpath.dirname(target), exist_ok=True)
        fs.put_file(str(file), target)
    if callback is not None:
        callback(file.stat().st_size)


def download(prefix_url: str, folder: str) -> list[str]:
    """Every object whose key starts with `prefix_url` (string prefix, as S3 lists), into
    `folder` by its key relative to the prefix's folder; the local paths written."""
    fs, prefix = filesystem(prefix_url)
    parent = prefix if prefix.endswith("/") else posixpath.dirname(prefix)
    written = []
    with translate_errors(prefix_url, "download"):
        for key in sorted(fs.find(parent)):
            if key.startswith(prefix) and not key.endswith("/"):
                local = Path(folder) / posixpath.relpath(key, parent)
                local.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(key, str(local))
                written.append(str(local))
    return written


def _protocols(fs: object) -> tuple[str, ...]:
    protocol = getattr(fs, "protocol", ())
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
