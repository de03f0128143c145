"""The effective MaxConcurrentTransforms / MaxPayloadInMB / BatchStrategy of a job.

Precedence is SageMaker's: the request, then the model's /execution-parameters, then
the defaults (1, 6 MB, MultiRecord).
"""

from __future__ import annotations

from dataclasses import dataclass

from batchform.runtimes.base import ExecutionParameters
from batchform.spec.enums import BatchStrategy
from batchform.spec.transform import (
    DEFAULT_MAX_CONCURRENT_TRANSFORMS,
    DEFAULT_MAX_PAYLOAD_IN_MB,
    CreateTransformJobRequest,
)


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    max_concurrent_transforms: int
    max_payload_in_mb: int
    batch_strategy: BatchStrategy

    def data_log_line(self) -> str:
        """The line SageMaker's data log starts with, so users can grep for it."""
        strategy = (
            "MULTI_RECORD"
            if self.batch_strategy is BatchStrategy.MULTI_RECORD
            else ("SINGLE_RECORD")
        )
        return (
            f"MaxConcurrentTransforms={self.max_concurrent_transforms}, "
            f"MaxPayloadInMB={self.max_payload_in_mb}, BatchStrategy={strategy}"
        )


def resolve_settings(
    request: CreateTransformJobRequest, params: ExecutionParameters
) -> EffectiveSettings:
    # A request value of 0 for MaxConcurrentTransforms means "not set", as in SageMaker.
    concurrency = request.max_concurrent_transforms or params.max_concurrent_transforms
    payload = request.max_payload_in_mb
    if payload is None:
        payload = params.max_payload_in_mb
    strategy = request.batch_strategy
    if strategy is None and params.batch_strategy:
        strategy = BatchStrategy.parse(params.batch_strategy)
    return EffectiveSettings(
        max_concurrent_transforms=max(1, concurrency or DEFAULT_MAX_CONCURRENT_TRANSFORMS),
        max_payload_in_mb=DEFAULT_MAX_PAYLOAD_IN_MB if payload is None else payload,
        batch_strategy=strategy or BatchStrategy.MULTI_RECORD,
    )
