"""Models and transform jobs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("arn", sa.String(256), nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "transform_jobs",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("arn", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure_reason", sa.Text),
        sa.Column("model_name", sa.String(63), nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("model", sa.JSON, nullable=False),
        sa.Column("settings", sa.JSON),
        sa.Column("progress", sa.JSON),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("modified_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("ended_at", sa.Float),
        sa.Column("owner", sa.String(64)),
        sa.Column("heartbeat_at", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("resume", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_transform_jobs_status", "transform_jobs", ["status"])
    op.create_index("ix_transform_jobs_created_at", "transform_jobs", ["created_at"])
    op.create_index("ix_transform_jobs_owner", "transform_jobs", ["owner"])


def downgrade() -> None:
    op.drop_table("transform_jobs")
    op.drop_table("models")
