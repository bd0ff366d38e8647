"""Warm-up events: the first N events of a model version, until they become its reference.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "warmup_events",
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("version", sa.String(255), primary_key=True),
        sa.Column("topic", sa.String(1024), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("offset", sa.BigInteger, primary_key=True),
        sa.Column("event_ms", sa.BigInteger, nullable=False),
        sa.Column("row", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("warmup_events")
