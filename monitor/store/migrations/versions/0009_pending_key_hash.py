"""SQLite: waiting predictions indexed by a 4-byte hash of their id, not by (model, id).

Serving systems send random ids, and each random (model, id) key landed on a page of its own
in the primary key's index: with a million predictions waiting, storing one cost 15 µs, most
of it pages written at commit. The rows now sit in insertion order (rowid) with an index on
``key_hash``, the CRC-32 of the id (`monitor.store.labels.key_hash`); the store checks taken
ids itself, which SQLite's single writer makes certain. PostgreSQL keeps its primary key:
members insert concurrently there, and only a unique index settles who stored an id.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

import zlib

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_VALUES = ("model", "id", "version", "start_ms", "end_ms", "slices", "prediction", "score",
           "scores", "event_ms", "label_ms")  # fmt: skip


def _columns(*, keyed: bool) -> list[sa.Column[object]]:
    return [
        sa.Column("model", sa.String(255), primary_key=keyed, nullable=False),
        sa.Column("id", sa.String(255), primary_key=keyed, nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=False),
        sa.Column("end_ms", sa.BigInteger, nullable=False),
        sa.Column("slices", sa.Text, nullable=False),
        sa.Column("prediction", sa.Text, nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("scores", sa.Text, nullable=True),
        sa.Column("event_ms", sa.BigInteger, nullable=False),
        sa.Column("label_ms", sa.BigInteger, nullable=True),
    ]


def _replace_with(table: str, select_hash: str = "") -> None:
    """Copy the waiting predictions into ``table``, which then takes the old name."""
    names = ", ".join(_VALUES)
    target = f"key_hash, {names}" if select_hash else names
    op.execute(
        f"INSERT INTO {table} ({target}) "  # noqa: S608
        f"SELECT {select_hash}{names} FROM pending_predictions"
    )
    op.drop_table("pending_predictions")
    op.rename_table(table, "pending_predictions")
    op.create_index("ix_pending_predictions_time", "pending_predictions", ["event_ms"])


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    bind.connection.dbapi_connection.create_function(  # type: ignore[union-attr]
        "monitor_key_hash", 1, lambda id_: zlib.crc32(id_.encode()), deterministic=True
    )
    op.create_table(
        "pending_predictions_hashed",
        sa.Column("key_hash", sa.Integer, nullable=False),
        *_columns(keyed=False),
    )
    _replace_with("pending_predictions_hashed", "monitor_key_hash(id), ")
    op.create_index("ix_pending_predictions_key_hash", "pending_predictions", ["key_hash"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_table("pending_predictions_keyed", *_columns(keyed=True))
    _replace_with("pending_predictions_keyed")
