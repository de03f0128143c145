"""Endpoint configurations and endpoints.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoint_configs",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("arn", sa.String(256), nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "endpoints",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("arn", sa.String(256), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("failure_reason", sa.Text),
        sa.Column("config_name", sa.String(63), nullable=False),
        sa.Column("pending_config_name", sa.String(63)),
        sa.Column("variants", sa.JSON),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("modified_at", sa.Float, nullable=False),
    )
    op.create_index("ix_endpoints_status", "endpoints", ["status"])
    op.create_index("ix_endpoints_created_at", "endpoints", ["created_at"])


def downgrade() -> None:
    op.drop_table("endpoints")
    op.drop_table("endpoint_configs")
