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
from batchform.records.assembly import assemble
from batchform.records.isolation import LeftmostSearch, record_ends
from batchform.runtimes.base import IsolationPlan
from batchform.runtimes.handler_module import HandlerSource, LoadedHandler, load_handler
from batchform.runtimes.spool import (
    SPOOL_MIN_BYTES,
    SpooledBody,
    read_spooled,
    receive_fd,
    send_fd,
)
from batchform.spec.enums import AssembleWith, SplitType


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
            header = conn.recv()
            many = header[0] == "many"
            payloads = conn.recv() if many else [receive_payload(conn, sock, header[-1])]
        except (EOFError, OSError):
            return
        kind, content_type, accept, option = header[:4]
        if kind == "many":
            answer_many(conn, handler, payloads, content_type, accept, option)
        elif kind == "isolate":
            plan = IsolationPlan(*header[4])
            answer_isolating(conn, handler, payloads[0], content_type, accept, option, plan)
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


def answer_isolating(
    conn: Connection,
    handler: LoadedHandler,
    payload: bytes,
    content_type: str | None,
    accept: str | None,
    report_every: float,
    plan: IsolationPlan,
) -> None:
    """Group-test the payload's records here, next to the model: no round trip per test,
    and one call at a time, so each test can build on the one before.
    A tick goes out at least every `report_every` seconds, so a hung call is noticed."""
    ends = record_ends(payload, SplitType(plan.split_type), plan.record_count)
    starts = [0, *ends]
    search = LeftmostSearch(plan.record_count, known_bad=plan.known_bad, group_size=plan.group_size)
    answers: list[bytes] = []  # in record order: the search answers left to right
    failed: list[tuple[int, int, int, int, str]] = []
    retries = 0
    reported = time.monotonic()
    while (test := search.next_test()) is not None:
        now = time.monotonic()
        if now - reported >= report_every:
            conn.send(("tick",))
            reported = now
        first, end = test
        part = payload[starts[first] : ends[end - 1]]
        alone = end - first == 1
        # Only a lone record is retried: a failed group is searched, and a retry would
        # mostly fail again for its bad record.
        retries_left = plan.max_retries if alone else 0
        outcome, tries = call_with_retries(
            handler, part, content_type, accept, retries_left, alone=alone
        )
        retries += tries
        if isinstance(outcome, bytes):
            search.report(True)
            answers.append(outcome)
            continue
        search.report(False)
        if isinstance(outcome, ModelError):
            failed.append((first, starts[first], ends[first], outcome.status, outcome.message))
    joining = AssembleWith(plan.assemble_with)
    body = b"".join(assemble(answer, joining) for answer in answers)
    conn.send(("isolated", body, failed, retries))


def call_with_retries(
    handler: LoadedHandler,
    payload: bytes,
    content_type: str | None,
    accept: str | None,
    max_retries: int,
    *,
    alone: bool,
) -> tuple[bytes | int | ModelError, int]:
    """The answer, or the failure once retries are spent (5xx only, as the engine
    retries): a lone record's ModelError, whose message its dead letter keeps, and only
    the status for a group of records."""
    attempt = 0
    while True:
        outcome = _attempt(handler, payload, content_type, accept, alone)
        if isinstance(outcome, bytes):
            return outcome, attempt
        status = outcome if isinstance(outcome, int) else outcome.status
        if status < 500 or attempt >= max_retries:
            return outcome, attempt
        attempt += 1


def _attempt(
    handler: LoadedHandler,
    payload: bytes,
    content_type: str | None,
    accept: str | None,
    alone: bool,
) -> bytes | int | ModelError:
    if not alone:
        return handler.status_or_body(payload, content_type, accept)
    try:
        return handler.transform(payload, content_type, accept)[0]
    except ModelError as exc:
        return exc


def main() -> None:
    # Ctrl-C reaches the whole terminal process group; the parent decides when workers
    # stop, so in-flight answers are not cut short by a traceback here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd, code_path, model_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    serve(Connection(int(fd)), HandlerSource(model_dir=model_dir, code_path=code_path))
    # The pair closed: nothing is left to answer. Exit now rather than tear down the
    # interpreter and the model's libraries, which made every job end wait ~30 ms;
    # what the handler printed is flushed first, so the log loses nothing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
