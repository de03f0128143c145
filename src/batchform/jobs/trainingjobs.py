"""Training jobs through the control plane: create, describe, list, stop.

Like transform jobs, a training job waits InProgress in the store until a server's
runner starts it in a worker process (`jobs/worker.py`), which reports its secondary
statuses as they happen.
"""

from __future__ import annotations

import time
from typing import Any

from batchform.errors import ConfigurationError, InvalidRequest, ResourceInUse
from batchform.jobs import lifecycle, resources
from batchform.jobs.lifecycle import JobStatus
from batchform.jobs.resources import required_name
from batchform.jobs.runner import JobRunner
from batchform.jobs.store import TRAINING_JOBS, AlreadyExists, Row, Store
from batchform.training.images import training_command
from batchform.training.run import parse_training_request, training_dir

Operation = Any

#: What ListTrainingJobs shows of each job.
SUMMARY_COLUMNS = (
    "name",
    "arn",
    "created_at",
    "modified_at",
    "status",
    "secondary_status",
    "ended_at",
)


class TrainingJobs:
    def __init__(self, store: Store, runner: JobRunner) -> None:
        self.store = store
        self.runner = runner

    def operations(self) -> dict[str, Operation]:
        return {
            "CreateTrainingJob": self.create,
            "DescribeTrainingJob": self.describe,
            "ListTrainingJobs": self.list,
            "StopTrainingJob": self.stop,
        }

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        request = parse_training_request(body)
        try:
            training_command(request.algorithm_specification)
        except ConfigurationError as exc:
            raise InvalidRequest(f"AlgorithmSpecification.TrainingImage: {exc}") from exc
        name = request.training_job_name
        arn = resources.arn("training-job", name)
        now = time.time()
        row = {
            "name": name,
            "arn": arn,
            "status": JobStatus.IN_PROGRESS.value,
            "secondary_status": "Starting",
            "request": request.to_request(),
            "transitions": [],
            "created_at": now,
            "modified_at": now,
            "attempts": 0,
            "resume": False,
        }
        try:
            self.store.insert(TRAINING_JOBS, row)
        except AlreadyExists:
            raise ResourceInUse(
                f"Training job names must be unique within an AWS account and "
                f"region, and a training job with this name already exists "
                f"({arn})"
            ) from None
        self.runner.wake()
        return {"TrainingJobArn": arn}

    def describe(self, body: dict[str, Any]) -> dict[str, Any]:
        return describe_training_job(self.row(required_name(body, "TrainingJobName")))

    def list(self, body: dict[str, Any]) -> dict[str, Any]:
        return resources.list_page(
            self.store,
            TRAINING_JOBS,
            body,
            ("Name", "CreationTime", "Status"),
            "TrainingJobSummaries",
            training_job_summary,
            SUMMARY_COLUMNS,
        )

    def stop(self, body: dict[str, Any]) -> dict[str, Any]:
        lifecycle.request_stop(
            self.store, TRAINING_JOBS, self.row(required_name(body, "TrainingJobName"))
        )
        return {}

    def row(self, name: str) -> Row:
        row = self.store.get(TRAINING_JOBS, name)
        if row is None:
            # SageMaker's own answer for an unknown training job.
            raise InvalidRequest("Requested resource not found.")
        return row

    def log_path(self, name: str) -> Any:
        self.row(name)
        return training_dir(name) / "log"


def describe_training_job(row: Row) -> dict[str, Any]:
    request = dict(row["request"])
    request.pop("Tags", None)
    answer: dict[str, Any] = {
        **request,
        "TrainingJobArn": row["arn"],
        "TrainingJobStatus": row["status"],
        "SecondaryStatus": row["secondary_status"],
        "CreationTime": row["created_at"],
        "LastModifiedTime": row["modified_at"],
        "SecondaryStatusTransitions": row["transitions"] or [],
        "ModelArtifacts": {"S3ModelArtifacts": row["model_artifacts"] or ""},
    }
    for field, column in (
        ("FailureReason", "failure_reason"),
        ("TrainingStartTime", "started_at"),
        ("TrainingEndTime", "ended_at"),
        ("FinalMetricDataList", "final_metrics"),
    ):
        if row[column] is not None:
            answer[field] = row[column]
    if row["started_at"] is not None and row["ended_at"] is not None:
        seconds = max(1, int(row["ended_at"] - row["started_at"]))
        answer["TrainingTimeInSeconds"] = answer["BillableTimeInSeconds"] = seconds
    return answer


def training_job_summary(row: Row) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "TrainingJobName": row["name"],
        "TrainingJobArn": row["arn"],
        "CreationTime": row["created_at"],
        "LastModifiedTime": row["modified_at"],
        "TrainingJobStatus": row["status"],
        "SecondaryStatus": row["secondary_status"],
    }
    if row["ended_at"] is not None:
        summary["TrainingEndTime"] = row["ended_at"]
    return summary
