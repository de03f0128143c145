"""boto3-shaped clients over a backend: `session.sagemaker_client` and
`session.sagemaker_runtime_client`, for code written against the sagemaker SDK's.

`sagemaker_client.describe_training_job(TrainingJobName=...)` runs the operation
DescribeTrainingJob with the keyword arguments as its body; refusals raise ApiCallError.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from batchform.sdk.backend import Backend, InvokeRequest


class SageMakerClient:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def __getattr__(self, method: str) -> Callable[..., dict[str, Any]]:
        if method.startswith("_"):
            raise AttributeError(method)
        operation = "".join(word.capitalize() for word in method.split("_"))

        def call(**body: Any) -> dict[str, Any]:
            return self._backend.call(operation, body)

        call.__name__ = method
        return call


class SageMakerRuntimeClient:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def invoke_endpoint(
        self,
        EndpointName: str,  # boto3's argument names
        Body: bytes | str | Any,
        ContentType: str | None = None,
        Accept: str | None = None,
        CustomAttributes: str | None = None,
        TargetVariant: str | None = None,
        **_unused: Any,
    ) -> dict[str, Any]:
        """InvokeEndpoint's answer as boto3 gives it, `Body` a readable stream."""
        answer = self._backend.invoke_endpoint(
            InvokeRequest(
                EndpointName,
                as_bytes(Body),
                ContentType,
                Accept,
                CustomAttributes,
                TargetVariant,
            )
        )
        response: dict[str, Any] = {
            "Body": io.BytesIO(answer.body),
            "ContentType": answer.content_type,
        }
        if answer.custom_attributes is not None:
            response["CustomAttributes"] = answer.custom_attributes
        if answer.invoked_variant is not None:
            response["InvokedProductionVariant"] = answer.invoked_variant
        return response


def as_bytes(data: object) -> bytes:
    """A request body: bytes as they are, text as UTF-8, a readable stream read out."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    read = getattr(data, "read", None)
    if callable(read):
        return as_bytes(read())
    raise TypeError(
        f"cannot send {type(data).__name__} as a request body: give bytes, str or a "
        "readable stream, or set a serializer that makes one"
    )
