"""The write end of a Pipe-mode FIFO, driven so that a stop always gets through.

The plain calls would block where a feeder must stay responsive: `open(O_WRONLY)` on a
FIFO waits until some reader opens it, and a write waits while the reader is not
reading. A feeder stuck in either could not notice that the job is stopping. So the FIFO
is opened non-blocking and retried while no reader is there (the kernel answers ENXIO),
and written after poll() says there is room, with a timeout to look at the stop flag.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import threading
from pathlib import Path

#: How often a feeder looks for a reader of a FIFO nobody has opened yet.
OPEN_RETRY_SECONDS = 0.01
#: How long a write waits for room before it looks at the stop flag again.
WRITE_POLL_MILLISECONDS = 100
#: Asked of the kernel for each FIFO: fewer wake-ups than the default 64 KiB.
PIPE_BUFFER_BYTES = 1 << 20


def create_fifo(path: Path) -> Path:
    """A new FIFO at `path`, readable and writable by this user only."""
    os.mkfifo(path, 0o600)
    return path


def open_when_read(path: Path, stop: threading.Event) -> int | None:
    """The write end of the FIFO once a reader has opened it; None if `stop` came first."""
    while not stop.is_set():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            stop.wait(OPEN_RETRY_SECONDS)
            continue
        _enlarge_buffer(fd)
        return fd
    return None


def _enlarge_buffer(fd: int) -> None:
    # A larger buffer is only an optimisation: the system's limit may refuse it.
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BUFFER_BYTES)


def write_all(fd: int, data: bytes, stop: threading.Event) -> bool:
    """Write all of `data`; False if the reader closed its end or `stop` was set first."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    view = memoryview(data)
    while view:
        if stop.is_set():
            return False
        if not poller.poll(WRITE_POLL_MILLISECONDS):
            continue
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            continue  # the reader took less than poll() promised room for
        except BrokenPipeError:
            return False
    return True
