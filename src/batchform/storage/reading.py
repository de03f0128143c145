"""Streaming input objects, decompressing Gzip on the fly."""

from __future__ import annotations

import gzip
import io
import mmap
import os
import zlib
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, BinaryIO, TypeVar, cast

import crc32c

from batchform.errors import StorageError
from batchform.spec.enums import CompressionType
from batchform.storage.filesystems import (
    filesystem,
    is_local,
    storage_errors,
    storage_failure,
    translate_errors,
)
from batchform.storage.inputs import InputObject

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

# Read-ahead per open object. Small enough that many objects open at once stay cheap
# (s3fs would default to 50 MiB), large enough for few round trips.
_READ_BLOCK_SIZE = 8 * 2**20

# What gzip raises on bad input: wrong magic or CRC, truncation, broken deflate data.
_CORRUPT_GZIP = (gzip.BadGzipFile, EOFError, zlib.error)

_T = TypeVar("_T")
_R = TypeVar("_R")


def object_crc32c(url: str, size: int | None = None) -> int:
    """CRC32C of the object's bytes (its first `size`, if given): over a memory map
    locally (no copy), else streamed."""
    fs, path = filesystem(url)
    checksum = 0
    left = size
    with translate_errors(url, "read"):
        if is_local(fs):
            with open(path, "rb") as handle:
                return _mapped_crc32c(handle.fileno(), size)
        with fs.open(path, "rb") as handle:
            while left != 0 and (chunk := handle.read(_read_size(left))):
                checksum = crc32c.crc32c(chunk, checksum)
                left = None if left is None else left - len(chunk)
    return checksum


def _read_size(left: int | None) -> int:
    return _READ_BLOCK_SIZE if left is None else min(left, _READ_BLOCK_SIZE)


def _mapped_crc32c(fd: int, size: int | None = None) -> int:
    length = os.fstat(fd).st_size if size is None else size
    if not length:
        return 0
    with mmap.mmap(fd, length, prot=mmap.PROT_READ) as mapped:
        return int(crc32c.crc32c(mapped))


def open_input(obj: InputObject, compression: CompressionType | str) -> BinaryIO:
    """A streaming reader of `obj`'s bytes, decompressed when `compression` is Gzip.

    Never reads the whole object into memory. Failures while reading, corrupt gzip
    data included, are raised as StorageError naming the object.
    """
    gzipped = CompressionType(compression) is CompressionType.GZIP
    if obj.end is not None and gzipped:
        raise StorageError(obj.url, "a byte range of a gzip object cannot be read on its own")
    fs, path = filesystem(obj.url)
    with translate_errors(obj.url, "open"):
        raw = fs.open(path, "rb", block_size=_READ_BLOCK_SIZE)
        if obj.start:
            raw.seek(obj.start)
    remaining = None if obj.end is None else obj.end - obj.start
    return cast(BinaryIO, _ObjectReader(obj.url, raw, gzipped, remaining))


class _ObjectReader(io.BufferedIOBase):
    """Reads through to the object (or a GzipFile over it), translating failures."""

    def __init__(
        self, url: str, raw: IO[bytes], gzipped: bool, remaining: int | None = None
    ) -> None:
        super().__init__()
        self._url = url
        self._remaining = remaining  # bytes left in a byte-range read; None: to the end
        self._raw = raw
        self._gzipped = gzipped
        self._source: IO[bytes] = cast(IO[bytes], gzip.GzipFile(fileobj=raw)) if gzipped else raw

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._counted(self._guarded(self._source.read, self._capped(size)))

    def read1(self, size: int = -1) -> bytes:
        # Plain fsspec files may lack read1; their read is no worse for a caller.
        read1: Callable[[int], bytes] = getattr(self._source, "read1", self._source.read)
        return self._counted(self._guarded(read1, self._capped(size)))

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self._remaining is not None:
            data = self.read(len(memoryview(buffer)))
            memoryview(buffer)[: len(data)] = data
            return len(data)
        return self._guarded(cast(io.BufferedIOBase, self._source).readinto, buffer)

    def readline(self, size: int | None = -1) -> bytes:
        return self._counted(self._guarded(self._source.readline, self._capped(size)))

    def _capped(self, size: int | None) -> int:
        wanted = -1 if size is None else size
        if self._remaining is None:
            return wanted
        return self._remaining if wanted < 0 else min(wanted, self._remaining)

    def _counted(self, data: bytes) -> bytes:
        if self._remaining is not None:
            self._remaining -= len(data)
        return data

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._gzipped:
                self._source.close()  # a GzipFile given a fileobj leaves it open
            self._raw.close()
        finally:
            super().close()

    def _guarded(self, method: Callable[[_T], _R], argument: _T) -> _R:
        try:
            return method(argument)
        except _CORRUPT_GZIP as exc:
            if not self._gzipped:
                raise
            raise self._corrupt(exc) from exc
        except storage_errors() as exc:
            raise storage_failure(self._url, "read", exc) from exc

    def _corrupt(self, exc: BaseException) -> StorageError:
        # gzip reads ahead, so the offset is where reading had got to, not the exact byte.
        try:
            offset: int | str = self._raw.tell()
        except (OSError, ValueError):
            offset = "unknown"
        return StorageError(self._url, f"corrupt gzip data at compressed offset {offset}: {exc}")
