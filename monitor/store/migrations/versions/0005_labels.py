"""Labels: predictions waiting for a label, early labels, performance shares, label counts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.store.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COUNTERS = ("duplicates", "unlabelled", "orphan_labels")


def upgrade() -> None:
    with op.batch_alter_table("window_counts") as batch:
        for name in _COUNTERS:
            batch.add_column(sa.Column(name, sa.BigInteger, nullable=False, server_default="0"))
    op.create_table(
        "pending_predictions",
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=False),
        sa.Column("end_ms", sa.BigInteger, nullable=False),
        sa.Column("slices", sa.Text, nullable=False),
        sa.Column("prediction", sa.Text, nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("scores", sa.Text, nullable=True),
        sa.Column("event_ms", sa.BigInteger, nullable=False),
        sa.Column("label_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_pending_predictions_time", "pending_predictions", ["event_ms"])
    op.create_table(
        "early_labels",
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("version", sa.String(255), nullable=True),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("event_ms", sa.BigInteger, nullable=False),
        sa.Column("arrived_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_early_labels_arrived", "early_labels", ["arrived_at"])
    op.create_table(
        "window_performance",
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("version", sa.String(255), primary_key=True),
        sa.Column("window_start", UTCDateTime(), primary_key=True),
        sa.Column("topic", sa.String(1024), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("window_end", UTCDateTime(), nullable=False),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("window_performance")
    op.drop_index("ix_early_labels_arrived", "early_labels")
    op.drop_table("early_labels")
    op.drop_index("ix_pending_predictions_time", "pending_predictions")
    op.drop_table("pending_predictions")
    with op.batch_alter_table("window_counts") as batch:
        for name in _COUNTERS:
            batch.drop_column(name)
