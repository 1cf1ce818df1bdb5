"""app settings: one JSON column holding AppSettings (slotgraph/appsettings.py)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 19:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # `{}` reads back as every default: existing apps keep today's behaviour.
    op.add_column(
        "apps", sa.Column("settings", JSON, nullable=False, server_default=sa.text("'{}'"))
    )


def downgrade() -> None:
    op.drop_column("apps", "settings")  # plain DROP COLUMN (SQLite >= 3.35): no table rebuild
