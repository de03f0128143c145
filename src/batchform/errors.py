"""The one exception tree of batchform.

User-code failures (the model answered 500, the handler raised) are kept apart from
system failures (storage unreachable, we broke) so that job failure reasons can say
whose fault it was, and so that retries apply only where SageMaker applies them.
"""

from __future__ import annotations


class BatchformError(Exception):
    """Root of every error batchform raises on purpose."""


class SpecValidationError(BatchformError):
    """Request fields broke rules; worded like SageMaker's ValidationException.

    Each problem is (field path, rule, offending value); the message lists them all so
    a user fixes every field in one go.
    """

    def __init__(self, problems: list[tuple[str, str, object]]) -> None:
        self.problems = problems
        count = len(problems)
        noun = "error" if count == 1 else "errors"
        details = "; ".join(describe_problem(*problem) for problem in problems)
        super().__init__(f"{count} validation {noun} detected: {details}")

    @property
    def fields(self) -> list[str]:
        return [field for field, _, _ in self.problems]


def describe_problem(field: str, rule: str, value: object) -> str:
    """One problem as SageMaker's ValidationException words it."""
    shown = "null" if value is None else str(value)
    if len(shown) > 120:
        shown = shown[:117] + "..."
    return f"Value '{shown}' at '{field}' failed to satisfy constraint: {rule}"


class ConfigurationError(BatchformError):
    """The job cannot start as configured (an unknown model, a missing extra)."""


class StorageError(BatchformError):
    """Reading or writing an object failed."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        super().__init__(f"{url}: {message}")


class InputFormatError(BatchformError):
    """Input bytes do not follow the declared format; names where it happened."""

    def __init__(
        self,
        message: str,
        *,
        object_key: str | None = None,
        record_index: int | None = None,
        byte_offset: int | None = None,
    ) -> None:
        self.object_key = object_key
        self.record_index = record_index
        self.byte_offset = byte_offset
        self.detail = message
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = []
        if self.object_key is not None:
            where.append(f"object '{self.object_key}'")
        if self.record_index is not None:
            where.append(f"record {self.record_index}")
        if self.byte_offset is not None:
            where.append(f"byte offset {self.byte_offset}")
        return f"{self.detail} ({', '.join(where)})" if where else self.detail

    def located(self, object_key: str) -> InputFormatError:
        """The same error, naming the object it came from."""
        return type(self)(
            self.detail,
            object_key=object_key,
            record_index=self.record_index,
            byte_offset=self.byte_offset,
        )


class RecordTooLargeError(InputFormatError):
    """One record is larger than MaxPayloadInMB allows."""


class InvocationError(BatchformError):
    """A model invocation did not produce a response."""

    retriable: bool = False


class ModelError(InvocationError):
    """The model answered with an error status (user code failed)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"model returned HTTP status {status}: {message}")

    @property
    def retriable(self) -> bool:  # type: ignore[override]
        return self.status >= 500


class ModelTimeoutError(InvocationError):
    """The model did not answer within InvocationsTimeoutInSeconds."""

    retriable = True

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"model timed out after {seconds:g} s")


class ModelConnectionError(InvocationError):
    """The model could not be reached (process died, connection refused or reset)."""

    retriable = True


class RuntimeStartError(BatchformError):
    """The model could not be started (bad handler, failed ping, process exited)."""


class JobStopped(BatchformError):
    """The job was stopped on request; nothing partial was written."""


class ServiceError(BatchformError):
    """A request the service refuses; `code` is SageMaker's error code for it."""

    code = "ValidationException"


class InvalidRequest(ServiceError):
    code = "ValidationException"


class ResourceNotFound(ServiceError):
    code = "ResourceNotFound"


class ResourceInUse(ServiceError):
    code = "ResourceInUse"


class ResourceLimitExceeded(ServiceError):
    code = "ResourceLimitExceeded"


class EndpointNotFound(ServiceError):
    """InvokeEndpoint on an endpoint that does not exist (sagemaker-runtime's code)."""

    code = "ValidationError"


class EndpointModelError(ServiceError):
    """The endpoint's model answered an error status: InvokeEndpoint's ModelError."""

    code = "ModelError"

    def __init__(self, status: int, message: str, log_stream_arn: str) -> None:
        self.original_status = status
        self.original_message = message
        self.log_stream_arn = log_stream_arn
        super().__init__(
            f'Received client error ({status}) from primary with message "{message}". '
            f"See {log_stream_arn} for more information."
            if status < 500
            else f'Received server error ({status}) from primary with message "{message}". '
            f"See {log_stream_arn} for more information."
        )


class ModelNotReady(ServiceError):
    """The endpoint exists but no instance of its model can answer yet."""

    code = "ModelNotReadyException"
