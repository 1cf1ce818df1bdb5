"""webhook endpoints choose their format (standard or timekit)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 19:55:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN with a default: existing endpoints keep Standard Webhooks.
    op.add_column(
        "webhook_endpoints",
        sa.Column("format", sa.String(length=16), nullable=False, server_default="standard"),
    )


def downgrade() -> None:
    op.drop_column("webhook_endpoints", "format")
