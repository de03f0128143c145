"""Instances on other machines: the storage they must reach, the files they must be sent.

Inputs and outputs must be on storage every node reaches — an object store (s3://, …)
or a shared filesystem mounted at the same path on every node and listed in
BATCHFORM_SHARED_PATHS. A model given as a local folder (or a local ModelDataUrl) is
packed once, put in the cluster's object store and unpacked into each instance's
workspace, so `--model ./model` works on a cluster as it does on a laptop.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import fsspec

from batchform.engine.executors.base import InstanceContext, InstancePool, Shared
from batchform.errors import ConfigurationError
from batchform.runtimes.registry import ModelReference, ModelRuntimes, RuntimeFactory

SHARED_PATHS_ENV = "BATCHFORM_SHARED_PATHS"
#: Larger model folders belong on shared storage, not in the object store.
MAX_SHIPPED_BYTES = 2 * 2**30
# Protocols whose paths mean something only to this machine (or this process).
_LOCAL_PROTOCOLS = ("file", "local", "memory")


def shared_paths() -> list[str]:
    """Local folders every node mounts at the same path (os.pathsep-separated)."""
    listed = os.environ.get(SHARED_PATHS_ENV, "")
    return [os.path.abspath(path) for path in listed.split(os.pathsep) if path]


def machine_local(url: str) -> bool:
    """Is `url` a path only this machine can read (not under BATCHFORM_SHARED_PATHS)?"""
    protocol, path = fsspec.core.split_protocol(url)
    if (protocol or "file") not in _LOCAL_PROTOCOLS:
        return False
    if protocol == "memory":
        return True
    absolute = os.path.abspath(path)
    return not any(
        absolute == root or absolute.startswith(root + os.sep) for root in shared_paths()
    )


def check_reachable(urls: Iterable[tuple[str, str]]) -> None:
    """Refuse (what, url) pairs that instances on other machines could not reach."""
    for what, url in urls:
        if machine_local(url):
            raise ConfigurationError(
                f"{what} '{url}' is a path on this machine, but the job's instances run on "
                "a Ray cluster of several machines, which cannot reach it: use s3:// (or "
                "another object store), or a shared filesystem mounted at the same path on "
                f"every node and listed in {SHARED_PATHS_ENV}"
            )


@dataclass(frozen=True)
class ShippedModel:
    """A model whose local files travel through the cluster's object store."""

    runtimes: ModelRuntimes
    image: Shared | None
    model_data: Shared | None

    def factory(self, context: InstanceContext) -> RuntimeFactory:
        """Unpack the files into the instance's workspace; runtimes use them from there."""
        return replace(self.runtimes, model=self.unpacked(context))

    def unpacked(self, context: InstanceContext) -> ModelReference:
        """The model as found in the instance's workspace once its files are unpacked."""
        root = Path(context.workspace) / "_shipped"
        model = self.runtimes.model
        if self.image is not None:
            unpack(self.image.get(), root / "image")
            model = replace(model, image=str(root / "image"))
        if self.model_data is not None:
            root.mkdir(parents=True, exist_ok=True)
            (root / "model.tar.gz").write_bytes(self.model_data.get())
            model = replace(model, model_data_url=str(root / "model.tar.gz"))
        return model


def ship_model(factory: RuntimeFactory, pool: InstancePool) -> ShippedModel | None:
    """The model's local files, shared through `pool`; None when nothing must travel."""
    if not isinstance(factory, ModelRuntimes):
        return None  # a runtime made in this process (tests, embedding): nothing to send
    model = factory.model
    image = _local_folder(model)
    data = (
        model.model_data_url
        if model.model_data_url and machine_local(model.model_data_url)
        else None
    )
    if image is None and data is None:
        return None
    return ShippedModel(
        factory,
        pool.share(pack_folder(image)) if image else None,
        pool.share(_read_file(data)) if data else None,
    )


def _local_folder(model: ModelReference) -> str | None:
    if not model.image or not machine_local(model.image):
        return None
    folder = model.image.removeprefix("file://")
    return folder if os.path.isdir(folder) else None


def pack_folder(folder: str) -> bytes:
    """The folder as a gzipped tar (modes kept: `serve` and `train` stay executable)."""
    size = sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())
    if size > MAX_SHIPPED_BYTES:
        raise ConfigurationError(_too_big(folder, size))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as archive:
        archive.add(folder, arcname=".")
    return buffer.getvalue()


def unpack(data: bytes, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        # The "tar" filter keeps modes (executables) and refuses paths out of `target`;
        # Pythons before 3.11.4 lack filters and extract as they always did.
        options = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
        archive.extractall(target, **options)  # type: ignore[arg-type]


def _read_file(path: str) -> bytes:
    local = path.removeprefix("file://")
    size = os.path.getsize(local)
    if size > MAX_SHIPPED_BYTES:
        raise ConfigurationError(_too_big(local, size))
    return Path(local).read_bytes()


def _too_big(path: str, size: int) -> str:
    return (
        f"model files '{path}' ({size / 2**30:.1f} GiB) are too big to send through Ray's "
        "object store: put them on shared storage (ModelDataUrl on s3://) or on a shared "
        f"filesystem listed in {SHARED_PATHS_ENV}"
    )
