"""Handles of started jobs: `Estimator.latest_training_job`, `Transformer.latest_transform_job`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchform.sdk.session import Session


class TrainingJob:
    def __init__(self, sagemaker_session: Session, job_name: str) -> None:
        self.sagemaker_session = sagemaker_session
        self.job_name = job_name

    @property
    def name(self) -> str:
        return self.job_name

    def describe(self) -> dict[str, Any]:
        return self.sagemaker_session.describe_training_job(self.job_name)

    def wait(self, logs: str | bool = "All") -> None:
        """Wait for the job to end, printing its log unless `logs` is "None" or False."""
        if logs in (False, "None"):
            self.sagemaker_session.wait_for_job(self.job_name)
        else:
            self.sagemaker_session.logs_for_job(self.job_name, wait=True, log_type=logs)

    def stop(self) -> None:
        self.sagemaker_session.stop_training_job(self.job_name)

    def __repr__(self) -> str:
        return f"TrainingJob({self.job_name!r})"


class TransformJob:
    def __init__(self, sagemaker_session: Session, job_name: str) -> None:
        self.sagemaker_session = sagemaker_session
        self.job_name = job_name

    @property
    def name(self) -> str:
        return self.job_name

    def describe(self) -> dict[str, Any]:
        return self.sagemaker_session.describe_transform_job(self.job_name)

    def wait(self, logs: bool = True) -> None:
        if logs:
            self.sagemaker_session.logs_for_transform_job(self.job_name, wait=True)
        else:
            self.sagemaker_session.wait_for_transform_job(self.job_name)

    def stop(self) -> None:
        self.sagemaker_session.stop_transform_job(self.job_name)

    def __repr__(self) -> str:
        return f"TransformJob({self.job_name!r})"
