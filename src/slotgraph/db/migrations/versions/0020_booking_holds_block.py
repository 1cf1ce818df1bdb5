"""an index on booking_holds.block_id: a block's hold found by key, not by a scan

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Deleting a block (DELETE .../blocks/{id}, a sync's moved or deleted events) and a
    # disconnect switch off the holds of given blocks: without it, a scan of every hold of every
    # app. Partial: booking holds (most rows) have no block.
    op.create_index(
        "ix_booking_holds_block",
        "booking_holds",
        ["block_id"],
        postgresql_where=sa.text("block_id IS NOT NULL"),
        sqlite_where=sa.text("block_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_booking_holds_block", table_name="booking_holds")
