"""Windows: partition watermarks, late counts, partial window state, closed windows, metrics.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.store.tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("consumer_offsets") as batch:
        batch.add_column(sa.Column("max_event_ms", sa.BigInteger, nullable=True))
    with op.batch_alter_table("window_counts") as batch:
        batch.add_column(
            sa.Column("late_events", sa.BigInteger, nullable=False, server_default="0")
        )
    op.create_table(
        "window_partials",
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("version", sa.String(255), primary_key=True),
        sa.Column("window_start", UTCDateTime(), primary_key=True),
        sa.Column("topic", sa.String(1024), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("window_end", UTCDateTime(), nullable=False),
        sa.Column("reference_revision", sa.Integer, nullable=True),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "closed_windows",
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("version", sa.String(255), primary_key=True),
        sa.Column("window_start", UTCDateTime(), primary_key=True),
        sa.Column("window_end", UTCDateTime(), nullable=False),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("reference_revision", sa.Integer, nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "window_metrics",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("segment", sa.String(255), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("window_end", UTCDateTime(), nullable=False),
        sa.Column("feature", sa.String(255), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("decision", sa.String(32), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint(
            "model", "version", "segment", "window_start", "feature", "metric", name="uq_metric"
        ),
    )
    op.create_index("ix_window_metrics_model_time", "window_metrics", ["model", "window_start"])
    op.create_table(
        "detector_states",
        sa.Column("group_id", sa.String(255), primary_key=True),
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("topic", sa.String(1024), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("detector_states")
    op.drop_index("ix_window_metrics_model_time", "window_metrics")
    op.drop_table("window_metrics")
    op.drop_table("closed_windows")
    op.drop_table("window_partials")
    with op.batch_alter_table("window_counts") as batch:
        batch.drop_column("late_events")
    with op.batch_alter_table("consumer_offsets") as batch:
        batch.drop_column("max_event_ms")
