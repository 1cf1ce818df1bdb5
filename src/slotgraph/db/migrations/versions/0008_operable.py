"""idempotency keys, worker heartbeats, request ids on events, versions for ETags

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 19:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import slotgraph.db.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

VERSIONED = ("resources", "clients", "webhook_endpoints")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("headers", JSON, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_idempotency_keys_app_id_apps")
        ),
        sa.PrimaryKeyConstraint("app_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_expires", "idempotency_keys", ["expires_at"])
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("beat_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_heartbeats")),
    )
    op.add_column("events", sa.Column("request_id", sa.String(length=128), nullable=True))
    for table in VERSIONED:
        op.add_column(
            table,
            sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
        )


def downgrade() -> None:
    for table in VERSIONED:
        op.drop_column(table, "version")  # plain DROP COLUMN (SQLite >= 3.35)
    op.drop_column("events", "request_id")
    op.drop_table("worker_heartbeats")
    op.drop_index("ix_idempotency_keys_expires", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
