"""Echo: answers every payload with itself, under the request's content type.

The cheapest handler there is, so benchmarks with it measure batchform's own overhead.
Runs unchanged under the SageMaker inference toolkit, which passes text/csv and JSON
bodies as str (returned as they came). The `bytes` annotation asks batchform for the raw
bytes, which skips decoding and re-encoding them.
"""

from __future__ import annotations


def model_fn(model_dir: str) -> None:
    return None


def transform_fn(
    model: None, body: bytes, content_type: str | None, accept: str | None
) -> tuple[bytes, str | None]:
    return body, content_type
