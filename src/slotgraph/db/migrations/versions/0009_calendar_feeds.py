"""calendar feeds: a secret feed per resource

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 19:30:00
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch): rebuilding `resources` on SQLite would trip the foreign keys
    # that point at it.
    op.add_column(
        "resources", sa.Column("feed_generation", sa.Integer(), nullable=False, server_default="1")
    )
    op.add_column("resources", sa.Column("feed_token_hash", sa.String(length=64), nullable=True))
    op.add_column(
        "resources",
        sa.Column("feed_shows_details", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index("uq_resources_feed_token_hash", "resources", ["feed_token_hash"], unique=True)
    secrets_table = op.create_table(
        "instance_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_instance_secrets")),
    )
    # Signs feed URLs when no SLOTGRAPH_ENCRYPTION_KEY is set (docs/calendars.md).
    op.bulk_insert(secrets_table, [{"name": "feed", "value": secrets.token_hex(32)}])


def downgrade() -> None:
    op.drop_table("instance_secrets")
    op.drop_index("uq_resources_feed_token_hash", "resources")
    for column in ("feed_shows_details", "feed_token_hash", "feed_generation"):
        op.execute(f"ALTER TABLE resources DROP COLUMN {column}")
