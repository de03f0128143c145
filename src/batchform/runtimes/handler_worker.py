"""The worker process of the Python handler runtime.

Started as `python -m batchform.runtimes.handler_worker FD CODE_PATH MODEL_DIR` with FD
one end of a socket pair: it imports only what a handler needs (never the command that
launched the job), loads the handler once, then answers payloads until the pair closes.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from multiprocessing.connection import Connection

from batchform.errors import ModelError
from batchform.runtimes.handler_module import HandlerSource, LoadedHandler, load_handler
from batchform.runtimes.spool import (
    SPOOL_MIN_BYTES,
    SpooledBody,
    read_spooled,
    receive_fd,
    send_fd,
)


def serve(conn: Connection, source: HandlerSource) -> None:
    try:
        handler = load_handler(source)
    except Exception as exc:  # anything the user's module raised at import or model_fn
        conn.send(("start-error", str(exc)))
        return
    conn.send(("ready", None))
    # The same socket, for passing descriptors; a duplicate, so each owner closes its own.
    sock = socket.socket(fileno=os.dup(conn.fileno()))
    while True:
        try:
            kind, content_type, accept, option, *spooled = conn.recv()
            payloads = conn.recv() if kind == "many" else [receive_payload(conn, sock, *spooled)]
        except (EOFError, OSError):
            return
        if kind == "many":
            answer_many(conn, handler, payloads, content_type, accept, option)
        else:
            answer(conn, handler, payloads[0], content_type, accept, sock if option else None)


def receive_payload(conn: Connection, sock: socket.socket, spooled_size: int | None) -> bytes:
    """The request body: inline, or read in one go from the memfd the engine passed."""
    if spooled_size is None:
        return conn.recv_bytes()
    fd = receive_fd(sock)
    try:
        return read_spooled(fd, spooled_size)
    finally:
        os.close(fd)


def answer(
    conn: Connection,
    handler: LoadedHandler,
    payload: bytes,
    content_type: str | None,
    accept: str | None,
    spool_over: socket.socket | None = None,
) -> None:
    """Answer one payload; a large answer goes as a memfd over `spool_over` when given."""
    try:
        body, response_type = handler.transform(payload, content_type, accept)
    except ModelError as exc:  # the handler maps every user failure to a status
        conn.send(("error", exc.status, exc.message))
        return
    if spool_over is None or len(body) < SPOOL_MIN_BYTES:
        conn.send(("ok", response_type))
        conn.send_bytes(body)
        return
    spooled = SpooledBody.of(body)
    try:
        conn.send(("spooled", response_type, *spooled.header()))
        send_fd(spool_over, spooled.fd)
    finally:
        spooled.close()


def answer_many(
    conn: Connection,
    handler: LoadedHandler,
    payloads: list[bytes],
    content_type: str | None,
    accept: str | None,
    report_every: float,
) -> None:
    """Answer independent payloads in order; what is done so far is sent at least every
    `report_every` seconds, so the engine can tell a slow round from a hung call."""
    done: list[tuple[str, object, object]] = []
    reported = time.monotonic()
    for payload in payloads:
        if done and time.monotonic() - reported >= report_every:
            conn.send(done)
            done, reported = [], time.monotonic()
        try:
            body, response_type = handler.transform(payload, content_type, accept)
            done.append(("ok", response_type, body))
        except ModelError as exc:
            done.append(("error", exc.status, exc.message))
    conn.send(done)


def main() -> None:
    # Ctrl-C reaches the whole terminal process group; the parent decides when workers
    # stop, so in-flight answers are not cut short by a traceback here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd, code_path, model_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    serve(Connection(int(fd)), HandlerSource(model_dir=model_dir, code_path=code_path))


if __name__ == "__main__":
    main()
