"""`serve`: the DBSCAN model behind SageMaker's serving contract, standard library HTTP.

- GET /ping: 200 (the model is loaded before the port opens).
- GET /execution-parameters: MaxConcurrentTransforms 1, MULTI_RECORD, 6 MB.
- POST /invocations: text/csv or application/jsonlines rows (the formats `train` reads);
  one answer line per input line: the cluster id as text/csv, or {"cluster": id} as
  application/jsonlines when Accept asks for it; -1 is noise. A line that holds a batch
  of rows (PCA's {"projections": [...]}) is answered on one line too: the ids
  comma-separated, or {"clusters": [ids]}.

HTTP/1.1 with keep-alive: every answer carries Content-Length, so batchform (or any
client) reuses the connection.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dbscan_core as core

EXECUTION_PARAMETERS = {
    "MaxConcurrentTransforms": 1,
    "BatchStrategy": "MULTI_RECORD",
    "MaxPayloadInMB": 6,
}
DEFAULT_PORT = 8080
# Loopback by default: batchform calls the model there. In a real SageMaker image set
# DBSCAN_BIND_HOST=0.0.0.0 (the platform calls the container from outside).
DEFAULT_HOST = "127.0.0.1"
_JSONLINES_TYPES = frozenset(
    {"application/jsonlines", "application/x-jsonlines", "application/jsonl"}
)
_CSV_ACCEPTS = frozenset({"*/*", "text/*", "text/csv"})
_TEXT = "text/plain; charset=utf-8"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    # Headers and body go out in two writes; without TCP_NODELAY the client's delayed
    # ACK would hold every small answer back by ~40 ms.
    disable_nagle_algorithm = True
    server_version = "dbscan-example/1.0"
    server: ModelServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/ping":
            self.reply(200, b"", _TEXT)
        elif path == "/execution-parameters":
            self.reply(200, json.dumps(EXECUTION_PARAMETERS).encode(), "application/json")
        else:
            self.reply(404, f"no such resource: GET {path}\n".encode(), _TEXT)

    def do_POST(self) -> None:
        body = self.read_body()
        if body is None:
            return
        path = urlsplit(self.path).path
        if path != "/invocations":
            self.reply(404, f"no such resource: POST {path}\n".encode(), _TEXT)
            return
        answer_type = accepted_type(self.headers.get("Accept"))
        if answer_type is None:
            message = f"Accept {self.headers.get('Accept')!r} is not supported: ask for "
            self.reply(406, f"{message}text/csv or application/jsonlines\n".encode(), _TEXT)
            return
        try:
            records = core.read_records(body, self.headers.get("Content-Type"), "request body")
            labels = self.server.model.predict(records.matrix)
        except core.UnsupportedMediaType as exc:
            self.reply(415, f"{exc}\n".encode(), _TEXT)
        except core.DataError as exc:
            self.reply(400, f"{exc}\n".encode(), _TEXT)
        except Exception as exc:
            traceback.print_exc()
            self.reply(500, f"{type(exc).__name__}: {exc}\n".encode(), _TEXT)
        else:
            self.reply(200, encode(labels, records.batches, answer_type), answer_type)

    def read_body(self) -> bytes | None:
        """The request body, by Content-Length or chunked; None when it could not be
        read (the answer is sent and the connection closed)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunks()
        length = self.headers.get("Content-Length")
        if length is None:
            if self.command == "POST":
                self.close_connection = True
                self.reply(411, b"Content-Length required\n", _TEXT)
                return None
            return b""
        try:
            size = int(length)
            if size < 0:
                raise ValueError(length)
        except ValueError:
            self.close_connection = True
            self.reply(400, f"bad Content-Length {length!r}\n".encode(), _TEXT)
            return None
        return self.rfile.read(size)

    def read_chunks(self) -> bytes | None:
        chunks: list[bytes] = []
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                self.reply(400, b"bad chunked encoding\n", _TEXT)
                return None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(8)  # the CRLF after the chunk

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would flood the job log; errors still go to stderr

    def log_error(self, format: str, *args: Any) -> None:
        print(f"dbscan serve: {format % args}", file=sys.stderr, flush=True)


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], model: core.Model) -> None:
        self.model = model
        super().__init__(address, Handler)


def accepted_type(accept: str | None) -> str | None:
    """The answer's media type for an Accept header: text/csv unless JSON Lines is asked
    for first; None when nothing asked for is supported."""
    if not accept or not accept.strip():
        return core.CSV
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in _CSV_ACCEPTS:
            return core.CSV
        if media in _JSONLINES_TYPES:
            return core.JSONLINES
    return None


def encode(labels: Any, batches: list[int | None] | None, media_type: str) -> bytes:
    """One line per input record: a row's cluster id, or a batch record's ids."""
    ids = [int(label) for label in labels]
    jsonlines = media_type == core.JSONLINES
    lines, start = [], 0
    for size in [None] * len(ids) if batches is None else batches:
        if size is None:
            lines.append(f'{{"cluster": {ids[start]}}}' if jsonlines else str(ids[start]))
            start += 1
        else:
            batch = ids[start : start + size]
            lines.append(
                json.dumps({"clusters": batch}) if jsonlines else ",".join(map(str, batch))
            )
            start += size
    return "".join(line + "\n" for line in lines).encode()


def model_dir() -> Path:
    explicit = os.environ.get("SM_MODEL_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("SAGEMAKER_BASE_DIR") or "/opt/ml") / "model"


def main() -> int:
    folder = model_dir()
    try:
        model = core.load_model(folder)
    except (core.DataError, OSError, ValueError, KeyError) as exc:
        print(f"dbscan serve: cannot load the model from {folder}: {exc}", file=sys.stderr)
        return 1
    host = os.environ.get("DBSCAN_BIND_HOST") or DEFAULT_HOST
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT") or DEFAULT_PORT)
    server = ModelServer((host, port), model)
    # SIGTERM (batchform stopping the model) ends serve_forever like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(
        f"dbscan serve: {model.clusters} clusters, {len(model.core_samples)} core samples, "
        f"eps={model.eps:.6g}; listening on {host}:{port}",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
