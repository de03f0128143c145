"""The store's tables as the code uses them; migrations/ builds them step by step."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

models = Table(
    "models",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("arn", String(256), nullable=False),
    Column("request", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)


def _job_columns() -> list[Column[object]]:
    """What every kind of job row has: identity, status, times, and who runs it."""
    return [
        Column("name", String(63), primary_key=True),
        Column("arn", String(256), nullable=False),
        Column("status", String(16), nullable=False, index=True),
        Column("failure_reason", Text),
        Column("request", JSON, nullable=False),
        Column("created_at", Float, nullable=False, index=True),
        Column("modified_at", Float, nullable=False),
        Column("started_at", Float),
        Column("ended_at", Float),
        # Which server runs the job and when it last said so: a job whose owner went
        # quiet is picked up again by a live server.
        Column("owner", String(64), index=True),
        Column("heartbeat_at", Float),
        Column("attempts", Integer, nullable=False, default=0),
        Column("resume", Boolean, nullable=False, default=False),
    ]


transform_jobs = Table(
    "transform_jobs",
    metadata,
    *_job_columns(),
    Column("model_name", String(63), nullable=False),
    Column("model", JSON, nullable=False),
    Column("settings", JSON),
    Column("progress", JSON),
)

training_jobs = Table(
    "training_jobs",
    metadata,
    *_job_columns(),
    Column("secondary_status", String(32), nullable=False),
    Column("transitions", JSON),
    Column("model_artifacts", Text),
    Column("final_metrics", JSON),
)

endpoint_configs = Table(
    "endpoint_configs",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("arn", String(256), nullable=False),
    Column("request", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

endpoints = Table(
    "endpoints",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("arn", String(256), nullable=False),
    Column("status", String(32), nullable=False, index=True),
    Column("failure_reason", Text),
    Column("config_name", String(63), nullable=False),
    # The configuration an UpdateEndpoint is moving to, until it is serving.
    Column("pending_config_name", String(63)),
    # What is deployed: per variant, its model and instance count (Describe shows it).
    Column("variants", JSON),
    Column("created_at", Float, nullable=False, index=True),
    Column("modified_at", Float, nullable=False),
)
