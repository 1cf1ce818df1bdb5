"""customer tokens and emails: booking tokens (hashed), notify and reminder on bookings, and
each app's two email targets in the delivery pipeline

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 22:40:00
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import slotgraph.db.types

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_TS = slotgraph.db.types.UTCDateTime(timezone=True)
# notifications/channel.py: the formats of the email targets (one per app and audience)
_EMAIL_FORMATS = ("email:customer", "email:owner")


def upgrade() -> None:
    op.create_table(
        "booking_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("booking_id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_booking_tokens_app_id_apps")
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_booking_tokens_booking_id_bookings")
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_booking_tokens")),
    )
    op.create_index("ix_booking_tokens_booking", "booking_tokens", ["booking_id", "kind"])
    # Plain ADD COLUMN (no batch): rebuilding `bookings` on SQLite would trip its foreign keys.
    op.add_column(
        "bookings", sa.Column("notify", sa.Boolean(), nullable=False, server_default=sa.true())
    )
    op.add_column("bookings", sa.Column("reminder", sa.Integer(), nullable=True))
    op.add_column("bookings", sa.Column("remind_at", _TS, nullable=True))
    op.create_index(
        "ix_bookings_remind_at",
        "bookings",
        ["remind_at"],
        postgresql_where=sa.text("remind_at IS NOT NULL"),
        sqlite_where=sa.text("remind_at IS NOT NULL"),
    )
    endpoints = sa.table(
        "webhook_endpoints",
        sa.column("id", sa.Uuid()),
        sa.column("app_id", sa.Uuid()),
        sa.column("url", sa.String()),
        sa.column("events", sa.JSON()),
        sa.column("format", sa.String()),
        sa.column("description", sa.String()),
        sa.column("enabled", sa.Boolean()),
        sa.column("secret", sa.String()),
        sa.column("created_at", _TS),
        sa.column("version", sa.Integer()),
        sa.column("updated_at", _TS),
    )
    now = datetime.now(UTC)
    app_ids = [row[0] for row in op.get_bind().execute(sa.text("SELECT id FROM apps"))]
    rows = [
        {
            "id": uuid.uuid4(),
            "app_id": app_id if isinstance(app_id, uuid.UUID) else uuid.UUID(str(app_id)),
            "url": fmt,
            "events": ["booking.*"],
            "format": fmt,
            "description": "emails",
            "enabled": True,
            "secret": "mail_" + secrets.token_hex(16),  # unused: nothing is signed
            "created_at": now,
            "version": 1,
            "updated_at": now,
        }
        for app_id in app_ids
        for fmt in _EMAIL_FORMATS
    ]
    if rows:
        op.bulk_insert(endpoints, rows)


def downgrade() -> None:
    formats = ", ".join(f"'{f}'" for f in _EMAIL_FORMATS)
    targets = f"SELECT id FROM webhook_endpoints WHERE format IN ({formats})"
    op.execute(f"DELETE FROM delivery_attempts WHERE endpoint_id IN ({targets})")
    op.execute(f"DELETE FROM deliveries WHERE endpoint_id IN ({targets})")
    op.execute(f"DELETE FROM webhook_endpoints WHERE format IN ({formats})")
    op.drop_index("ix_bookings_remind_at", "bookings")
    for column in ("remind_at", "reminder", "notify"):
        op.execute(f"ALTER TABLE bookings DROP COLUMN {column}")
    op.drop_index("ix_booking_tokens_booking", "booking_tokens")
    op.drop_table("booking_tokens")
