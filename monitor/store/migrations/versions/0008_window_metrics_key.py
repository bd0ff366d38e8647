"""Window metrics keyed by their natural key, model and window start first, with no other index.

The table had a surrogate id, a unique constraint on the natural key and an index on
(model, window_start): three B-trees for every row a close writes. Now the natural key, led by
what history queries ask by, is the primary key and the only index; SQLite keeps the rows in
it (WITHOUT ROWID). The rows are copied into the new table, which then takes the old name.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.store.tables import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_VALUES = ("model", "version", "segment", "window_start", "window_end", "feature", "metric",
           "value", "n", "decision", "updated_at")  # fmt: skip
_KEY = ("model", "window_start", "version", "segment", "feature", "metric")
_OLD_KEY = ("model", "version", "segment", "window_start", "feature", "metric")
_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _columns() -> list[sa.Column[object]]:
    return [
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
    ]


def _copy_into(table: str) -> None:
    names = ", ".join(_VALUES)
    op.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM window_metrics")  # noqa: S608
    op.drop_table("window_metrics")
    op.rename_table(table, "window_metrics")


def upgrade() -> None:
    op.drop_index("ix_window_metrics_model_time", "window_metrics")
    op.create_table(
        "window_metrics_keyed",
        *_columns(),
        sa.PrimaryKeyConstraint(*_KEY, name="pk_window_metrics"),
        sqlite_with_rowid=False,
    )
    _copy_into("window_metrics_keyed")


def downgrade() -> None:
    op.create_table(
        "window_metrics_with_id",
        sa.Column("id", _ID, primary_key=True),
        *_columns(),
        sa.UniqueConstraint(*_OLD_KEY, name="uq_metric"),
    )
    _copy_into("window_metrics_with_id")
    op.create_index("ix_window_metrics_model_time", "window_metrics", ["model", "window_start"])
