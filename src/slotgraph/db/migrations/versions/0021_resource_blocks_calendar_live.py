"""an index on a connection's live blocks: resource_blocks(calendar_id) where not deleted

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01 04:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A disconnect's statement, each sync's read of what the connection keeps, and the count
    # GET .../calendar shows read a connection's blocks that are not deleted: at most 50,000.
    # ix_resource_blocks_calendar holds every block the connection ever pulled (a moved event
    # leaves its old block, deleted), which those reads went through and passed over.
    op.create_index(
        "ix_resource_blocks_calendar_live",
        "resource_blocks",
        ["calendar_id"],
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_resource_blocks_calendar_live", table_name="resource_blocks")
