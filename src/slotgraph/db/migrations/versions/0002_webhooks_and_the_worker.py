"""webhooks and the worker

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 06:33:53.321599
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import slotgraph.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column(
            "events",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=200), nullable=True),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("previous_secret", sa.String(length=100), nullable=True),
        sa.Column(
            "previous_secret_expires_at",
            slotgraph.db.types.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("failing_since", slotgraph.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_webhook_endpoints_app_id_apps")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(
        "ix_webhook_endpoints_app",
        "webhook_endpoints",
        ["app_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column(
            "event_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("booking_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("locked_until", slotgraph.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("locked_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name=op.f("fk_deliveries_app_id_apps")),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_deliveries_endpoint_id_webhook_endpoints"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
    )
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_deliveries_order",
        "deliveries",
        ["endpoint_id", "booking_id", "event_seq"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "uq_deliveries_endpoint_event", "deliveries", ["endpoint_id", "event_id"], unique=True
    )
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("next_retry_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_delivery_attempts_delivery_id_deliveries"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_delivery_attempts_endpoint_id_webhook_endpoints"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    op.create_index(
        "ix_delivery_attempts_endpoint",
        "delivery_attempts",
        ["endpoint_id", "at", "id"],
        unique=False,
    )
    op.add_column(
        "bookings",
        sa.Column("auto_complete", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.create_index(
        "ix_bookings_requests_start",
        "bookings",
        ["start_time"],
        unique=False,
        postgresql_where=sa.text("status = 'tentative' AND graph = 'confirm_decline'"),
        sqlite_where=sa.text("status = 'tentative' AND graph = 'confirm_decline'"),
    )
    op.create_index(
        "ix_bookings_to_complete",
        "bookings",
        ["end_time"],
        unique=False,
        postgresql_where=sa.text("status IN ('confirmed', 'paid') AND auto_complete"),
        sqlite_where=sa.text("status IN ('confirmed', 'paid') AND auto_complete"),
    )
    op.add_column(
        "events",
        sa.Column("dispatched_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_events_undispatched",
        "events",
        ["seq"],
        unique=False,
        postgresql_where=sa.text("dispatched_at IS NULL"),
        sqlite_where=sa.text("dispatched_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_events_undispatched",
        table_name="events",
        postgresql_where=sa.text("dispatched_at IS NULL"),
        sqlite_where=sa.text("dispatched_at IS NULL"),
    )
    op.drop_column("events", "dispatched_at")
    op.drop_index(
        "ix_bookings_to_complete",
        table_name="bookings",
        postgresql_where=sa.text("status IN ('confirmed', 'paid') AND auto_complete"),
        sqlite_where=sa.text("status IN ('confirmed', 'paid') AND auto_complete"),
    )
    op.drop_index(
        "ix_bookings_requests_start",
        table_name="bookings",
        postgresql_where=sa.text("status = 'tentative' AND graph = 'confirm_decline'"),
        sqlite_where=sa.text("status = 'tentative' AND graph = 'confirm_decline'"),
    )
    op.drop_column("bookings", "auto_complete")
    op.drop_index("ix_delivery_attempts_endpoint", table_name="delivery_attempts")
    op.drop_table("delivery_attempts")
    op.drop_index("uq_deliveries_endpoint_event", table_name="deliveries")
    op.drop_index(
        "ix_deliveries_order",
        table_name="deliveries",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.drop_index(
        "ix_deliveries_due",
        table_name="deliveries",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.drop_table("deliveries")
    op.drop_index("ix_webhook_endpoints_app", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
