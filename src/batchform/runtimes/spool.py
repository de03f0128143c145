"""Answers handed over as anonymous in-memory files instead of copied through a pipe.

A handler worker writes a large answer into a memfd and passes the descriptor over its
socket pair (SCM_RIGHTS). The engine then moves the bytes into the output file inside
the kernel (sendfile), in order, without reading them into its own memory: the engine
process never copies the answers, which are often several times the size of the input.

The worker sends the answer's size, CRC32C and last byte with it, so the engine can keep
its running checksum and AssembleWith=Line's newline rule without looking at the bytes.
A descriptor is closed once its bytes are written or dropped; the kernel frees the
memory with the last close, also when either process dies.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import BinaryIO

import crc32c

#: Answers smaller than this travel inline: a memfd costs a few system calls.
SPOOL_MIN_BYTES = 256 * 1024
_COPY_CHUNK = 4 * 1024 * 1024


class SpooledBody:
    """An answer held in an anonymous file; owns its descriptor until `close`."""

    __slots__ = ("crc32c", "ends_with_newline", "fd", "size")

    def __init__(self, fd: int, size: int, crc32c: int, ends_with_newline: bool) -> None:
        self.fd = fd
        self.size = size
        self.crc32c = crc32c
        self.ends_with_newline = ends_with_newline

    @classmethod
    def of(cls, data: bytes) -> SpooledBody:
        """`data` in a new spool file, with what the reader needs to know about it."""
        return cls(spool(data), len(data), crc32c.crc32c(data), data[-1:] == b"\n")

    def header(self) -> tuple[int, int, bool]:
        """What travels beside the descriptor: size, CRC32C, ends with a newline."""
        return self.size, self.crc32c, self.ends_with_newline

    def read(self) -> bytes:
        """The whole answer, for the rare caller that needs the bytes themselves."""
        return read_spooled(self.fd, self.size)

    def write_to(self, file: BinaryIO) -> None:
        """Append the answer to `file`: in the kernel when it is a local file."""
        target = _fileno(file)
        if target is not None:
            file.flush()  # bytes buffered before this answer go first
            if _sendfile_all(target, self.fd, self.size):
                return
        for offset in range(0, self.size, _COPY_CHUNK):
            file.write(os.pread(self.fd, min(_COPY_CHUNK, self.size - offset), offset))

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:  # an answer dropped on an error path still frees its memory
        with contextlib.suppress(OSError):
            self.close()


def spool(data: bytes) -> int:
    """A new anonymous file holding `data`, read position at its start."""
    fd = os.memfd_create("batchform-answer", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        raise
    return fd


def send_fd(sock: socket.socket, fd: int) -> None:
    """Pass `fd` to the other end of a Unix socket, riding on one marker byte."""
    socket.send_fds(sock, [b"F"], [fd])


def receive_fd(sock: socket.socket) -> int:
    """The descriptor `send_fd` passed; EOFError when the other end went away first."""
    message, fds, _flags, _address = socket.recv_fds(sock, 1, 4)
    for extra in fds[1:]:
        os.close(extra)
    if not message or not fds:
        for fd in fds[:1]:
            os.close(fd)
        raise EOFError("the answer's descriptor did not arrive")
    return fds[0]


def _fileno(file: BinaryIO) -> int | None:
    try:
        return file.fileno()
    except (OSError, AttributeError, ValueError):  # object stores, in-memory files
        return None


def _sendfile_all(target: int, source: int, size: int) -> bool:
    """Copy `size` bytes of `source` to `target`'s position; False if sendfile cannot."""
    offset = 0
    while offset < size:
        try:
            sent = os.sendfile(target, source, offset, size - offset)
        except OSError:
            if offset:
                raise  # part of the answer is written: the caller's file is now wrong
            return False
        if sent == 0:
            raise OSError(f"answer file ended after {offset} of {size} bytes")
        offset += sent
    return True


def read_spooled(fd: int, size: int) -> bytes:
    """The first `size` bytes of a spool file (one read, one copy, for a memfd)."""
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            raise OSError(f"answer file ended after {offset} of {size} bytes")
        chunks.append(chunk)
        offset += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
