"""Fetch a model's `ModelDataUrl` tarball and unpack it into the model directory.

The tarball comes from whoever created the model, so it is untrusted input: a member
named `../../etc/cron.d/x`, or a symlink pointing out of the folder followed by a file
written through it, must not touch anything outside the model directory. Every member
is judged before the first byte is written, so a rejected archive leaves nothing
behind; tarfile's own `data` filter then checks again against the real file system.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any

from batchform.errors import RuntimeStartError
from batchform.storage import filesystem

_CHUNK_BYTES = 1 << 20
# Deeper than any real model needs; stops a loop of links from recursing forever.
_MAX_LINK_HOPS = 40
_THROUGH_LINKS = "path goes through symbolic links that leave the model directory (or loop)"


class UnsafeModelDataError(RuntimeStartError):
    """A member of the model tarball would land outside the model directory."""

    def __init__(self, url: str, member: str, reason: str) -> None:
        self.url = url
        self.member = member
        self.reason = reason
        super().__init__(f"model data {url}: refusing member '{member}': {reason}")


def extract_model_data(url: str, model_dir: str | os.PathLike[str]) -> str:
    """Unpack the tarball at `url` (any fsspec URL, gzip or plain tar) into `model_dir`.

    Returns the sha256 hex digest of the tarball's bytes, which a resumed job compares
    to make sure it runs the same model.
    """
    with tempfile.TemporaryDirectory(prefix="batchform-model-") as scratch:
        tarball, digest = _fetch(url, scratch)
        _extract_safely(url, tarball, Path(model_dir))
    return digest


def _fetch(url: str, scratch: str) -> tuple[str, str]:
    """A local path to the tarball and its digest, downloading only when it is remote.

    Checking members first and extracting afterwards reads the archive twice; a remote
    object is copied once (hashing on the way) rather than fetched twice.
    """
    try:
        fs, path = filesystem(url)
        if _is_local(fs):
            with fs.open(path, "rb") as source:
                return path, _copy_hashing(source, None)
        copy = os.path.join(scratch, "model.tar.gz")
        with fs.open(path, "rb") as source, open(copy, "wb") as sink:
            return copy, _copy_hashing(source, sink)
    except (OSError, ValueError) as exc:
        raise RuntimeStartError(f"cannot read model data {url}: {exc}") from exc


def _is_local(fs: Any) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols


def _copy_hashing(source: IO[bytes], sink: IO[bytes] | None) -> str:
    digest = hashlib.sha256()
    while chunk := source.read(_CHUNK_BYTES):
        digest.update(chunk)
        if sink is not None:
            sink.write(chunk)
    return digest.hexdigest()


def _extract_safely(url: str, tarball: str, model_dir: Path) -> None:
    try:
        with tarfile.open(tarball, "r:*") as archive:
            members = archive.getmembers()
            check_members(url, members)
            model_dir.mkdir(parents=True, exist_ok=True)
            _extract(archive, members, model_dir)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise RuntimeStartError(f"model data {url} could not be extracted: {exc}") from exc


def _extract(archive: tarfile.TarFile, members: list[tarfile.TarInfo], model_dir: Path) -> None:
    if hasattr(tarfile, "data_filter"):
        archive.extractall(model_dir, members=members, filter="data")
    else:  # Python before 3.10.12 / 3.11.4: only our own checks stand guard.
        archive.extractall(model_dir, members=members)


def check_members(url: str, members: Sequence[tarfile.TarInfo]) -> None:
    """Raise UnsafeModelDataError for the first member that is not plainly safe.

    Symlinks are tracked in archive order, as extraction creates them, so that paths
    that go through an earlier link are judged where they would really land.
    """
    links: dict[str, str] = {}
    for member in members:
        reason = _unsafe_reason(member, links)
        if reason is not None:
            raise UnsafeModelDataError(url, member.name, reason)
        if member.issym():
            parts = PurePosixPath(member.name).parts
            parent = _resolve(parts[:-1], links) or []
            links["/".join([*parent, parts[-1]])] = member.linkname


def _unsafe_reason(member: tarfile.TarInfo, links: dict[str, str]) -> str | None:
    kind = _forbidden_kind(member)
    if kind is not None:
        return f"{kind} members are not allowed"
    if member.name.startswith("/"):
        return "absolute path"
    parts = PurePosixPath(member.name).parts
    if ".." in parts:
        return "path contains '..'"
    if not parts:  # the archive's own root, "./"
        return None
    parent = _resolve(parts[:-1], links)
    if parent is None:
        return _THROUGH_LINKS
    if member.issym():
        return _symlink_reason(member.linkname, parent, links)
    if member.islnk():
        return _hardlink_reason(member.linkname, links)
    if _resolve([*parent, parts[-1]], links) is None:
        return _THROUGH_LINKS
    return None


def _forbidden_kind(member: tarfile.TarInfo) -> str | None:
    if member.ischr() or member.isblk():
        return "device"
    if member.isfifo():
        return "FIFO"
    if member.isreg() or member.isdir() or member.issym() or member.islnk():
        return None
    return "special"


def _symlink_reason(target: str, parent: list[str], links: dict[str, str]) -> str | None:
    if target.startswith("/"):
        return f"symbolic link to absolute path '{target}'"
    if _resolve([*parent, *PurePosixPath(target).parts], links) is None:
        return f"symbolic link target '{target}' resolves outside the model directory"
    return None


def _hardlink_reason(target: str, links: dict[str, str]) -> str | None:
    # A hard link's target is named from the archive root, not from the link's folder.
    if target.startswith("/") or _resolve(PurePosixPath(target).parts, links) is None:
        return f"hard link target '{target}' is outside the model directory"
    return None


def _resolve(parts: Sequence[str], links: dict[str, str], hops: int = 0) -> list[str] | None:
    """Walk `parts` from the model directory as the kernel would, following the
    archive's symlinks; None when the walk climbs above the model directory (or loops).
    """
    resolved: list[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            continue
        resolved.append(part)
        target = links.get("/".join(resolved))
        if target is None:
            continue
        if target.startswith("/") or hops >= _MAX_LINK_HOPS:
            return None
        followed = _resolve([*resolved[:-1], *PurePosixPath(target).parts], links, hops + 1)
        if followed is None:
            return None
        resolved = followed
    return resolved
