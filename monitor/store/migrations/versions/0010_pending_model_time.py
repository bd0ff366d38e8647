"""Waiting predictions indexed by (model, event time), not by event time alone.

Every checkpoint removes each model's predictions past its own label horizon. Over an index
of event time alone, a model with a short horizon walked the older predictions of every model
with a longer one, at every checkpoint: on SQLite 13.8, 54.6 and 133 ms per checkpoint with
100k, 400k and 1M waiting (`scripts/bench.py prune`). Per model, its oldest prediction and the
range past its cutoff are each one probe of this index
(`monitor.store.labels.prune_predictions`): 0.3 to 0.4 ms at any of those sizes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_pending_predictions_time", "pending_predictions")
    op.create_index(
        "ix_pending_predictions_model_time", "pending_predictions", ["model", "event_ms"]
    )


def downgrade() -> None:
    op.drop_index("ix_pending_predictions_model_time", "pending_predictions")
    op.create_index("ix_pending_predictions_time", "pending_predictions", ["event_ms"])
