"""deliveries due per target: a claim that skips a slow target does not read its backlog

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A claim while targets are skipped as slow picks each other target's due rows on this
    # index (services/delivery_statements.py `_pick_per_target`); on ix_deliveries_due alone it
    # read past every due row of the skipped target (15.8 ms a claim at 20,000).
    op.create_index(
        "ix_deliveries_due_per_target",
        "deliveries",
        ["endpoint_id", "next_attempt_at", "event_seq"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_due_per_target", table_name="deliveries")
