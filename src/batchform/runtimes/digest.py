"""A model's identity for summaries and resume: where it came from and a digest of it."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from batchform import storage
from batchform.runtimes.registry import ModelReference

_CHUNK = 8 * 1024 * 1024


def describe_model(model: ModelReference) -> dict[str, Any]:
    """Image, model data and URL as given, with a sha256 over what batchform can read."""
    digest = hashlib.sha256()
    if model.image:
        folder_digest(model.image.removeprefix("file://"), digest)
    if model.model_data_url:
        _stream_into(model.model_data_url, digest)
    readable = bool(model.image or model.model_data_url)
    return {
        "image": model.image,
        "model_data_url": model.model_data_url,
        "url": model.url,
        "environment": dict(model.environment),
        "sha256": digest.hexdigest() if readable else None,
    }


def folder_digest(folder: str, digest: Any) -> None:
    """Every file's relative path and bytes, in a stable order; caches left out."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, folder).encode() + b"\0")
            with open(path, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)


def _stream_into(url: str, digest: Any) -> None:
    fs, path = storage.filesystem(url)
    with fs.open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
