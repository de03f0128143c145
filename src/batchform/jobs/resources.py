"""SageMaker's resource vocabulary: ARNs, List* queries and their tokens, response shapes."""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson
import sqlalchemy as sa

from batchform.errors import InvalidRequest
from batchform.jobs.store import ListQuery, Row, Store

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "000000000000"

_SORT_COLUMNS = {"Name": "name", "CreationTime": "created_at", "Status": "status"}


def arn(kind: str, name: str) -> str:
    """SageMaker's ARN shape; it lower-cases resource names."""
    region = os.environ.get("BATCHFORM_REGION", DEFAULT_REGION)
    account = os.environ.get("BATCHFORM_ACCOUNT_ID", DEFAULT_ACCOUNT)
    return f"arn:aws:sagemaker:{region}:{account}:{kind}/{name.lower()}"


def list_query(body: dict[str, Any], sort_keys: tuple[str, ...]) -> ListQuery:
    """A List* request as a store query; the token carries the offset of the next page."""
    sort_by = body.get("SortBy", "CreationTime")
    if sort_by not in sort_keys:
        raise InvalidRequest(_enum_problem("sortBy", sort_by, sort_keys))
    order = body.get("SortOrder", "Descending")
    if order not in ("Ascending", "Descending"):
        raise InvalidRequest(_enum_problem("sortOrder", order, ("Ascending", "Descending")))
    return ListQuery(
        name_contains=body.get("NameContains"),
        status=body.get("StatusEquals"),
        created_after=_time(body, "CreationTimeAfter"),
        created_before=_time(body, "CreationTimeBefore"),
        modified_after=_time(body, "LastModifiedTimeAfter"),
        modified_before=_time(body, "LastModifiedTimeBefore"),
        sort_by=_SORT_COLUMNS[sort_by],
        descending=order == "Descending",
        offset=decode_token(body.get("NextToken")),
        limit=_max_results(body.get("MaxResults", 10)),
    )


def list_page(
    store: Store,
    table: sa.Table,
    body: dict[str, Any],
    sort_keys: tuple[str, ...],
    key: str,
    shape: Any,
    columns: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A List* answer: the page the request asks for, with NextToken when more exist."""
    query = list_query(body, sort_keys)
    # One row past the page tells whether there is a next one.
    rows = store.rows(table, replace(query, limit=query.limit + 1), columns)
    answer: dict[str, Any] = {key: [shape(row) for row in rows[: query.limit]]}
    if len(rows) > query.limit:
        answer["NextToken"] = encode_token(query.offset + query.limit)
    return answer


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"offset": offset})).decode()


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = orjson.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(
            "Invalid pagination token: NextToken is not one this server gave"
        ) from exc
    if not isinstance(offset, int) or offset < 0:
        raise InvalidRequest("Invalid pagination token: NextToken is not one this server gave")
    return offset


def required_name(body: dict[str, Any], field: str) -> str:
    """The resource name a Describe/Delete/Stop request must carry."""
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(
            f"1 validation error detected: Value 'null' at '{field[:1].lower() + field[1:]}' "
            "failed to satisfy constraint: Member must not be null"
        )
    return value


def _max_results(value: Any) -> int:
    if not isinstance(value, int) or not 1 <= value <= 100:
        raise InvalidRequest(
            f"1 validation error detected: Value '{value}' at 'maxResults' failed to satisfy "
            "constraint: Member must have value between 1 and 100"
        )
    return value


def _time(body: dict[str, Any], field: str) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, int | float):
        raise InvalidRequest(f"{field} must be a timestamp (epoch seconds), not {value!r}")
    return float(value)


def _enum_problem(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    return (
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy "
        f"constraint: Member must satisfy enum value set: [{', '.join(allowed)}]"
    )


def describe_model(row: Row) -> dict[str, Any]:
    request = dict(row["request"])
    request.pop("Tags", None)
    return {**request, "ModelArn": row["arn"], "CreationTime": row["created_at"]}


def model_summary(row: Row) -> dict[str, Any]:
    return {"ModelName": row["name"], "ModelArn": row["arn"], "CreationTime": row["created_at"]}


def describe_transform_job(row: Row) -> dict[str, Any]:
    request = dict(row["request"])
    request.pop("Tags", None)
    answer: dict[str, Any] = {
        **request,
        **_effective(request, row.get("settings")),
        "TransformJobArn": row["arn"],
        "TransformJobStatus": row["status"],
        "CreationTime": row["created_at"],
    }
    _put(answer, "FailureReason", row["failure_reason"])
    _put(answer, "TransformStartTime", row["started_at"])
    _put(answer, "TransformEndTime", row["ended_at"])
    return answer


#: What ListTransformJobs shows of each job.
SUMMARY_COLUMNS = (
    "name",
    "arn",
    "created_at",
    "modified_at",
    "status",
    "ended_at",
    "failure_reason",
)


def transform_job_summary(row: Row) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "TransformJobName": row["name"],
        "TransformJobArn": row["arn"],
        "CreationTime": row["created_at"],
        "LastModifiedTime": row["modified_at"],
        "TransformJobStatus": row["status"],
    }
    _put(summary, "TransformEndTime", row["ended_at"])
    _put(summary, "FailureReason", row["failure_reason"])
    return summary


def _effective(request: dict[str, Any], settings: dict[str, Any] | None) -> dict[str, Any]:
    """What the job ran with once the model said; until then what the request said."""
    if settings:
        return settings
    known = ("MaxConcurrentTransforms", "MaxPayloadInMB", "BatchStrategy")
    return {field: request[field] for field in known if field in request}


def _put(answer: dict[str, Any], field: str, value: Any) -> None:
    if value is not None:
        answer[field] = value
