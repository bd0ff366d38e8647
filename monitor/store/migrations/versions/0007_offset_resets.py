"""Offset resets: the offset a partition expected when the broker's log restarted below it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.store.tables import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consumer_offsets") as batch:
        batch.add_column(sa.Column("reset_from", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("reset_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consumer_offsets") as batch:
        batch.drop_column("reset_at")
        batch.drop_column("reset_from")
