"""Writing outputs so that no partial object is ever visible."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO, TYPE_CHECKING, BinaryIO, cast

import fsspec
from fsspec.spec import AbstractBufferedFile

from batchform.storage.filesystems import (
    filesystem,
    is_local,
    partial_name,
    storage_errors,
    storage_failure,
    translate_errors,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

logger = logging.getLogger(__name__)

# S3 multipart part size: an open output holds about this much in memory, and S3
# wants parts of at least 5 MiB.
_WRITE_BLOCK_SIZE = 8 * 2**20


def output_url(output_path: str, key: str) -> str:
    """`<output_path>/<key>.out`, joined with exactly one '/'."""
    return f"{output_path.rstrip('/')}/{key.lstrip('/')}.out"


@contextmanager
def atomic_output(url: str) -> Iterator[BinaryIO]:
    """A writer whose bytes appear at `url` only when the block ends without error.

    Locally the bytes go to a hidden temporary file beside the target, renamed over it
    at the end. Object stores get the key directly: an S3 multipart upload becomes
    visible only when completed, and on an exception it is aborted instead. Either way
    the exception propagates; storage failures are raised as StorageError.
    """
    fs, path = filesystem(url)
    write = _write_local if is_local(fs) else _write_object
    with write(fs, path, url) as file:
        yield cast(BinaryIO, _ObjectWriter(url, file))


def append_object(sink: BinaryIO, url: str) -> int:
    """Copy the object at `url` onto the end of `sink`; the number of bytes copied.

    Between local files the kernel copies (copy_file_range): the bytes never pass
    through this process.
    """
    fs, path = filesystem(url)
    with translate_errors(url, "read"):
        if is_local(fs) and (target := _fileno(sink)) is not None:
            sink.flush()  # what the sink buffered goes first
            with open(path, "rb") as source:
                copied = _copy_in_kernel(source.fileno(), target)
            if copied is not None:
                return copied
        copied = 0
        with fs.open(path, "rb") as source:
            while chunk := source.read(_WRITE_BLOCK_SIZE):
                sink.write(chunk)
                copied += len(chunk)
        return copied


def join_objects(urls: list[str], target: str) -> list[int]:
    """Concatenate the objects at `urls` into `target`, atomically; each one's size.

    Locally the first object becomes the target: the others are appended to it by the
    kernel and it is renamed into place, so its bytes are neither read nor written
    again. Should that fail, the first object is cut back to what it was. Elsewhere
    the target is written afresh. The sources are left for the caller to remove.
    """
    fs, path = filesystem(target)
    first_fs, first = filesystem(urls[0])
    if not (is_local(fs) and is_local(first_fs)):
        with atomic_output(target) as sink:
            return [append_object(sink, url) for url in urls]
    with translate_errors(target, "join"):
        original = os.path.getsize(first)
        try:
            with open(first, "r+b") as sink:
                sink.seek(0, os.SEEK_END)
                sizes = [original, *(append_object(sink, url) for url in urls[1:])]
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            os.replace(first, path)
        except BaseException:
            with suppress(OSError):
                os.truncate(first, original)
            raise
    return sizes


def _fileno(file: BinaryIO) -> int | None:
    try:
        return file.fileno()
    except (OSError, AttributeError, ValueError):
        return None


def _copy_in_kernel(source: int, target: int) -> int | None:
    """All of `source` appended at `target`'s position; None if the kernel cannot."""
    size = os.fstat(source).st_size
    copied = 0
    while copied < size:
        try:
            step = os.copy_file_range(source, target, size - copied)
        except OSError:
            if copied:
                raise
            return None  # across filesystems on some kernels, or unsupported: stream it
        if step == 0:
            break
        copied += step
    return copied


def write_bytes(url: str, data: bytes) -> None:
    """Write a whole (small) object atomically."""
    with atomic_output(url) as file:
        file.write(data)


@contextmanager
def _write_local(fs: fsspec.AbstractFileSystem, path: str, url: str) -> Iterator[IO[bytes]]:
    folder, name = os.path.split(path)
    temp = os.path.join(folder, partial_name(name))
    with translate_errors(url, "open for writing"):
        os.makedirs(folder, exist_ok=True)
        file = open(temp, "xb")  # noqa: SIM115 - closed below, on both paths
    try:
        yield file
        with translate_errors(url, "commit"):
            file.close()
            os.replace(temp, path)  # atomic within one filesystem, hence the same folder
    except BaseException:
        file.close()
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise


@contextmanager
def _write_object(fs: fsspec.AbstractFileSystem, path: str, url: str) -> Iterator[IO[bytes]]:
    with translate_errors(url, "open for writing"):
        file = fs.open(path, "wb", block_size=_WRITE_BLOCK_SIZE)
    try:
        yield file
        with translate_errors(url, "commit"):
            file.close()
    except BaseException:
        _abandon(fs, path, file)
        raise


def _abandon(fs: fsspec.AbstractFileSystem, path: str, file: IO[bytes]) -> None:
    """Throw an unfinished upload away without committing any of it."""
    try:
        if isinstance(file, AbstractBufferedFile):
            # close() - which the file's own __exit__ and __del__ call - would commit the
            # buffered bytes; discard() aborts the multipart upload, and marking the file
            # closed keeps anything from committing it later.
            file.closed = True
            file.discard()
        else:
            # Writers that commit on close (in-memory files, SFTP handles): close, then
            # delete what landed. Not atomic, but nothing partial stays behind.
            file.close()
            fs.rm_file(path)
    except Exception:
        logger.warning("could not clean up unfinished output %s", path, exc_info=True)


class _ObjectWriter(io.BufferedIOBase):
    """Writes through to the output file, translating storage failures.

    Closing it does not commit: only the end of the `atomic_output` block does.
    """

    def __init__(self, url: str, file: IO[bytes]) -> None:
        super().__init__()
        self._url = url
        self._file = file

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        """The local file's descriptor (to copy into it in the kernel); OSError elsewhere."""
        return self._file.fileno()

    def write(self, data: ReadableBuffer) -> int:
        try:
            return self._file.write(data)
        except storage_errors() as exc:
            raise storage_failure(self._url, "write", exc) from exc

    def flush(self) -> None:
        if self.closed or self._file.closed:
            return
        try:
            self._file.flush()
        except storage_errors() as exc:
            raise storage_failure(self._url, "write", exc) from exc
