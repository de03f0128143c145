"""What the SDK raises, beyond the service's own refusals.

Every refusal of the SageMaker API, embedded or from a server, is an `ApiCallError`
carrying SageMaker's error code (`ValidationException`, `ResourceNotFound`, ...), so
code catches the same thing in both modes.
"""

from __future__ import annotations

from batchform.client import ApiCallError
from batchform.errors import BatchformError

__all__ = ["ApiCallError", "ModelError", "UnexpectedStatusException"]


class UnexpectedStatusException(BatchformError, ValueError):
    """A job or endpoint ended in a status other than the ones asked for (a ValueError,
    as the sagemaker SDK's is)."""

    def __init__(self, message: str, allowed_statuses: list[str], actual_status: str) -> None:
        self.allowed_statuses = allowed_statuses
        self.actual_status = actual_status
        super().__init__(message)


class ModelError(ApiCallError):
    """InvokeEndpoint's ModelError: the model answered with an error status.

    `original_status_code` and `original_message` are the model's own status and body,
    as the runtime API reports them.
    """

    def __init__(
        self, message: str, original_status_code: int | None, original_message: str | None
    ) -> None:
        self.original_status_code = original_status_code
        self.original_message = original_message
        super().__init__("ModelError", message)
