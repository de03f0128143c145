"""The embedded backend: batchform's service in this process.

The service is made on first use and its job runner started then: jobs run in worker
processes the runner spawns, as they do under `batchform server`. It is closed by
`close()` (Session.close, a `with` block) or at interpreter exit; closing hands running
jobs back to the store, where the next runner on this BATCHFORM_HOME resumes them.
"""

from __future__ import annotations

import atexit
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchform.errors import EndpointModelError, ServiceError, SpecValidationError
from batchform.errors import ModelError as ModelFailure
from batchform.sdk.backend import Invocation, InvokeRequest, JobKind, LogLine
from batchform.sdk.exceptions import ApiCallError, ModelError

if TYPE_CHECKING:
    from batchform.service import Service, ServiceSettings

_READ_BYTES = 1 << 20
Operation = Callable[[dict[str, Any]], dict[str, Any]]
_LINE = re.compile(r"^(\S+) \[([^\]]+)\] (.*)$")


class EmbeddedBackend:
    def __init__(self, settings: ServiceSettings | None = None) -> None:
        self._settings = settings
        self._service: Service | None = None
        self._operations: dict[str, Operation] = {}
        self._lock = threading.Lock()

    @property
    def service(self) -> Service:
        """The running service, started on first use."""
        with self._lock:
            if self._service is None:
                from batchform.service import Service

                service = Service(self._settings)
                service.start()
                atexit.register(self.close)
                self._service = service
                self._operations = dict(service.operations())
            return self._service

    def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        handler = self._operation(operation)
        if handler is None:
            raise ApiCallError("UnknownOperationException", f"Unknown operation {operation}")
        with translated_errors():
            return handler(dict(body))

    def _operation(self, name: str) -> Operation | None:
        _ = self.service  # started first: its operations are known from then on
        return self._operations.get(name)

    def invoke_endpoint(self, request: InvokeRequest) -> Invocation:
        invoke: Any = getattr(self.service, "invoke_endpoint", None)
        if invoke is None:
            raise ApiCallError(
                "UnknownOperationException", "this batchform version does not serve endpoints"
            )
        with translated_errors():
            answer = invoke(
                request.endpoint_name,
                request.body,
                content_type=request.content_type,
                accept=request.accept,
                custom_attributes=request.custom_attributes,
                target_variant=request.target_variant,
            )
        return Invocation(
            bytes(answer.body),
            answer.content_type,
            answer.custom_attributes,
            answer.invoked_variant,
        )

    def log_reader(self, kind: JobKind, job_name: str) -> FileLogReader:
        service = self.service
        with translated_errors():
            if kind is JobKind.TRAINING:
                return FileLogReader(Path(service.training.log_path(job_name)))
            return FileLogReader(service.job_log(job_name))

    def close(self) -> None:
        with self._lock:
            service, self._service = self._service, None
        if service is not None:
            atexit.unregister(self.close)
            service.close()


@contextmanager
def translated_errors() -> Iterator[None]:
    """The service's refusals as the ApiCallError (code and message) a server answers."""
    try:
        yield
    except ApiCallError:
        raise
    except ModelFailure as exc:
        raise ModelError(str(exc), exc.status, exc.message) from exc
    except EndpointModelError as exc:
        raise ModelError(str(exc), exc.original_status, exc.original_message) from exc
    except SpecValidationError as exc:
        raise ApiCallError("ValidationException", str(exc)) from exc
    except ServiceError as exc:
        raise ApiCallError(exc.code, str(exc)) from exc


class FileLogReader:
    """Reads a job's log file (`<time> [<stream>] <message>` lines) as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def read(self) -> list[LogLine]:
        try:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read(_READ_BYTES)
        except FileNotFoundError:
            return []  # the job has not started logging yet
        whole = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits
        self._offset += len(whole)
        return [parse_line(line) for line in whole.decode("utf-8", "replace").splitlines()]


def parse_line(line: str) -> LogLine:
    match = _LINE.match(line)
    if match is None:
        return LogLine(0, "data-log", line)
    stamp, stream, message = match.groups()
    return LogLine(_milliseconds(stamp), stream, message)


def _milliseconds(stamp: str) -> int:
    try:
        return int(datetime.fromisoformat(stamp).timestamp() * 1000)
    except ValueError:
        return 0
