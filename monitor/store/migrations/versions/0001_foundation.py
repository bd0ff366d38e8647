"""Foundation: consumer offsets, dead letters and per-window event counts.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.store.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consumer_offsets",
        sa.Column("group_id", sa.String(255), primary_key=True),
        sa.Column("topic", sa.String(1024), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("topic", sa.String(1024), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("version", sa.String(255), nullable=True),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("topic", "partition", "offset", name="uq_dead_letter"),
    )
    op.create_table(
        "window_counts",
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("version", sa.String(255), primary_key=True),
        sa.Column("window_start", UTCDateTime(), primary_key=True),
        sa.Column("window_end", UTCDateTime(), nullable=False),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("labels", sa.BigInteger, nullable=False),
        sa.Column("last_event_time", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_window_counts_model", "window_counts", ["model", "version"])


def downgrade() -> None:
    op.drop_index("ix_window_counts_model", "window_counts")
    op.drop_table("window_counts")
    op.drop_table("dead_letters")
    op.drop_table("consumer_offsets")
