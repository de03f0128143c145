"""Every invalid request of the shared table fails like SageMaker's: one named field, one rule."""

from __future__ import annotations

from typing import Any

import pytest

from batchform.errors import SpecValidationError
from batchform.server.protocol import ApiError, call
from batchform.spec.common import Request, parse_request
from batchform.spec.model import CreateModelRequest, ModelNameRequest
from batchform.spec.transform import CreateTransformJobRequest
from tests.validation_cases import (
    CASES,
    CREATE_MODEL,
    CREATE_TRANSFORM_JOB,
    VALID_REQUESTS,
    ValidationCase,
)

SHAPES: dict[str, type[Request]] = {
    CREATE_TRANSFORM_JOB: CreateTransformJobRequest,
    CREATE_MODEL: CreateModelRequest,
}


def parse(operation: str, body: dict[str, Any]) -> Request:
    return parse_request(SHAPES[operation], body)


@pytest.mark.parametrize("operation", sorted(VALID_REQUESTS))
def test_valid_base_requests_parse(operation: str) -> None:
    request = parse(operation, VALID_REQUESTS[operation])
    assert request.to_request().items() >= {"ModelName": "parity-model"}.items()


CASE_PARAMS = [pytest.param(case, id=case.case_id) for case in CASES]


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_invalid_request_names_its_field_and_rule(case: ValidationCase) -> None:
    with pytest.raises(SpecValidationError) as caught:
        parse(case.operation, case.body)
    message = str(caught.value)
    # One mistake per case, so exactly one problem: a second would hide a broken base.
    assert message.startswith("1 validation error detected: Value "), message
    assert f"at '{case.field}" in message, message
    assert case.rule in message, message


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_the_wire_error_carries_the_code_and_message(case: ValidationCase) -> None:
    """What the server answers: the error code botocore raises, the same message."""
    with pytest.raises(ApiError) as caught:
        call(lambda body: parse(case.operation, body).to_request(), case.body)
    assert (caught.value.code, caught.value.status) == (case.error_code, 400)
    assert case.field in caught.value.message and case.rule in caught.value.message


def test_the_table_covers_both_operations_with_unique_ids() -> None:
    ids = [case.case_id for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 40
    assert {case.operation for case in CASES} == set(SHAPES)


def test_model_name_request_is_checked_like_create_model() -> None:
    assert parse_request(ModelNameRequest, {"ModelName": "parity-model"}).model_name == (
        "parity-model"
    )
    with pytest.raises(SpecValidationError) as caught:
        parse_request(ModelNameRequest, {"ModelName": "bad_model"})
    assert caught.value.fields == ["modelName"]


def test_model_data_url_may_be_any_fsspec_url() -> None:
    """SageMaker wants s3:// or https://; batchform runs local and other stores too."""
    for url in ("/models/pca.tar.gz", "file:///models/pca.tar.gz", "gs://bucket/pca.tar.gz"):
        body = {**VALID_REQUESTS[CREATE_MODEL], "PrimaryContainer": {"ModelDataUrl": url}}
        request = parse_request(CreateModelRequest, body)
        assert request.container_list[0].model_data_url == url
