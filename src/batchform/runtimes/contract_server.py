"""The serving contract's endpoints on one keep-alive HTTP/1.1 connection.

Each `serve-handler` worker runs this for every connection it accepts: GET /ping, GET
/execution-parameters and POST /invocations, answered from the handler the worker loaded.
Not http.server: its header parsing through the email package costs more than a small
model's prediction, and under SingleRecord that is paid for every record.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http import HTTPStatus

from batchform.errors import ModelError
from batchform.runtimes import http1
from batchform.runtimes.handler_module import LoadedHandler
from batchform.runtimes.httpclient import COALESCE_BYTES

TEXT = "text/plain; charset=utf-8"
_REASONS = {status.value: status.phrase for status in HTTPStatus}


class InFlight:
    """Invocations being answered, from the request line to the last byte of the reply,
    so a stopping worker exits only once every answer has gone out."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def invocation(self) -> Iterator[None]:
        with self._changed:
            self._count += 1
        try:
            yield
        finally:
            with self._changed:
                self._count -= 1
                self._changed.notify_all()

    def wait_until_idle(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, timeout)


class ContractModel:
    """The handler loaded in this worker, called by one connection thread at a time
    (LoadedHandler keeps no per-request state, but is not meant for concurrent calls)."""

    def __init__(self, handler: LoadedHandler, parameters: dict[str, object]) -> None:
        self.handler = handler
        self.parameters = json.dumps(parameters).encode()
        self.in_flight = InFlight()
        self._lock = threading.Lock()

    def invoke(
        self, payload: bytes, content_type: str | None, accept: str | None
    ) -> tuple[int, bytes, str]:
        """(HTTP status, body, content type); a ModelError keeps its status, as in
        SageMaker's toolkit, with the message as the body."""
        with self._lock:
            try:
                body, response_type = self.handler.transform(payload, content_type, accept)
            except ModelError as exc:
                return exc.status, exc.message.encode("utf-8", "replace"), TEXT
            except Exception as exc:  # transform maps user errors; this is our own failure
                return 500, f"{type(exc).__name__}: {exc}".encode("utf-8", "replace"), TEXT
        return 200, body, response_type


def serve_connection(connection: socket.socket, model: ContractModel) -> None:
    """Answer requests until the client closes the connection or asks to."""
    reader = connection.makefile("rb")
    try:
        while _answer_one(connection, reader, model):
            pass
    except OSError:
        pass  # the client went away mid-request; there is no one to answer
    finally:
        reader.close()


def _answer_one(connection: socket.socket, reader: http1.Reader, model: ContractModel) -> bool:
    """One request and its answer; whether the connection stays open."""
    try:
        line = http1.read_line(reader, http1.no_deadline)
        if not line.strip():
            return bool(line)  # a stray blank line between requests is allowed; EOF is not
        method, path, version = _request_line(line)
        headers = http1.read_headers(reader, http1.no_deadline)
        if headers.get("expect", "").lower() == "100-continue":
            connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = http1.read_body(reader, headers, http1.no_deadline) or b""
    except http1.HttpProtocolError as exc:
        _send(connection, 400, str(exc).encode(), TEXT, keep_alive=False)
        return False
    keep_alive = http1.keeps_alive(version, headers)
    if (method, path) == ("POST", "/invocations"):
        with model.in_flight.invocation():
            content_type, accept = headers.get("content-type"), headers.get("accept")
            _send(connection, *model.invoke(body, content_type, accept), keep_alive=keep_alive)
    else:
        _send(connection, *_endpoint(method, path, model), keep_alive=keep_alive)
    return keep_alive


def _request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise http1.HttpProtocolError(f"not an HTTP/1.x request line: {line[:80]!r}")
    method, target, version = parts
    return method, target.split("?", 1)[0], version


def _endpoint(method: str, path: str, model: ContractModel) -> tuple[int, bytes, str]:
    if path == "/invocations":
        return 405, b"use POST", TEXT
    if path not in ("/ping", "/execution-parameters"):
        return 404, b"not found", TEXT
    if method != "GET":
        return 405, b"use GET", TEXT
    if path == "/ping":
        return 200, b"", TEXT
    return 200, model.parameters, "application/json"


def _send(
    connection: socket.socket, status: int, body: bytes, content_type: str, *, keep_alive: bool
) -> None:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
        f"Date: {_date()}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        + ("" if keep_alive else "Connection: close\r\n")
        + "\r\n"
    ).encode("latin-1")
    if len(body) < COALESCE_BYTES:
        connection.sendall(head + body)
    else:  # not copied onto the head; TCP_NODELAY keeps the two writes from stalling
        connection.sendall(head)
        connection.sendall(body)


_clock: dict[int, str] = {}


def _date() -> str:
    """The Date header, formatted once a second rather than once a request."""
    now = int(time.time())
    date = _clock.get(now)
    if date is None:
        date = formatdate(now, usegmt=True)
        _clock.clear()
        _clock[now] = date
    return date
