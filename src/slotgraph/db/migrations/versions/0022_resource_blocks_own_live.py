"""an index on a resource's own live blocks: resource_blocks(resource_id) where made through the
API and not deleted

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01 07:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

LIVE_OWN = "calendar_id IS NULL AND deleted_at IS NULL"


def upgrade() -> None:
    # Every POST .../blocks counts the resource's live blocks made through the API (at most
    # services/resources.py MAX_BLOCKS, 50,000): through ix_resource_blocks_resource that count
    # also passed over every block the resource's calendar ever pulled, deleted ones included.
    op.create_index(
        "ix_resource_blocks_own_live",
        "resource_blocks",
        ["resource_id"],
        postgresql_where=sa.text(LIVE_OWN),
        sqlite_where=sa.text(LIVE_OWN),
    )


def downgrade() -> None:
    op.drop_index("ix_resource_blocks_own_live", table_name="resource_blocks")
