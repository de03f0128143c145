"""The worker process of the Python handler runtime.

Started as `python -m batchform.runtimes.handler_worker FD CODE_PATH MODEL_DIR` with FD
one end of a socket pair: it imports only what a handler needs (never the command that
launched the job), loads the handler once, then answers payloads until the pair closes.
"""

from __future__ import annotations

import signal
import sys
from multiprocessing.connection import Connection

from batchform.errors import ModelError
from batchform.runtimes.handler_module import HandlerSource, LoadedHandler, load_handler


def serve(conn: Connection, source: HandlerSource) -> None:
    try:
        handler = load_handler(source)
    except Exception as exc:  # anything the user's module raised at import or model_fn
        conn.send(("start-error", str(exc)))
        return
    conn.send(("ready", None))
    while True:
        try:
            content_type, accept = conn.recv()
            payload = conn.recv_bytes()
        except (EOFError, OSError):
            return
        answer(conn, handler, payload, content_type, accept)


def answer(
    conn: Connection,
    handler: LoadedHandler,
    payload: bytes,
    content_type: str | None,
    accept: str | None,
) -> None:
    try:
        body, response_type = handler.transform(payload, content_type, accept)
    except ModelError as exc:  # the handler maps every user failure to a status
        conn.send(("error", exc.status, exc.message))
        return
    conn.send(("ok", response_type))
    conn.send_bytes(body)


def main() -> None:
    # Ctrl-C reaches the whole terminal process group; the parent decides when workers
    # stop, so in-flight answers are not cut short by a traceback here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd, code_path, model_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    serve(Connection(int(fd)), HandlerSource(model_dir=model_dir, code_path=code_path))


if __name__ == "__main__":
    main()
