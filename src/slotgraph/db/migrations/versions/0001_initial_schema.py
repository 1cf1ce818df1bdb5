"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 06:14:24.653387
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import slotgraph.db.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apps")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name=op.f("fk_api_keys_app_id_apps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_app_id"), "api_keys", ["app_id"], unique=False)
    op.create_table(
        "clients",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=50), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column(
            "meta",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name=op.f("fk_clients_app_id_apps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clients")),
    )
    op.create_index(
        "ix_clients_app_created", "clients", ["app_id", "created_at", "id"], unique=False
    )
    op.create_index(
        "uq_clients_app_email",
        "clients",
        ["app_id", "email"],
        unique=True,
        postgresql_where=sa.text("email IS NOT NULL"),
        sqlite_where=sa.text("email IS NOT NULL"),
    )
    op.create_table(
        "resources",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column(
            "meta",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("archived_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name=op.f("fk_resources_app_id_apps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resources")),
    )
    op.create_index(
        "ix_resources_app_created", "resources", ["app_id", "created_at", "id"], unique=False
    )
    op.create_table(
        "bookings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("graph", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("start_time", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end_time", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column(
            "meta",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("payment_due_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("payment_id", sa.String(length=200), nullable=True),
        sa.Column("max_seats", sa.Integer(), nullable=True),
        sa.Column("seats_taken", sa.Integer(), nullable=True),
        sa.Column("min_cancel_time", slotgraph.db.types.Seconds(), nullable=True),
        sa.Column("min_booking_time", slotgraph.db.types.Seconds(), nullable=True),
        sa.Column("max_booking_time", slotgraph.db.types.Seconds(), nullable=True),
        sa.Column("owner_booking_id", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("end_time > start_time", name=op.f("ck_bookings_span")),
        sa.CheckConstraint(
            "seats_taken >= 0 AND seats_taken <= max_seats", name=op.f("ck_bookings_seats")
        ),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name=op.f("fk_bookings_app_id_apps")),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_bookings_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["owner_booking_id"],
            ["bookings.id"],
            name=op.f("fk_bookings_owner_booking_id_bookings"),
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["resources.id"], name=op.f("fk_bookings_resource_id_resources")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
    )
    op.create_index(
        "ix_bookings_app_start", "bookings", ["app_id", "start_time", "id"], unique=False
    )
    op.create_index("ix_bookings_client", "bookings", ["client_id"], unique=False)
    op.create_index("ix_bookings_owner", "bookings", ["owner_booking_id"], unique=False)
    op.create_index(
        "ix_bookings_payment_due",
        "bookings",
        ["payment_due_at"],
        unique=False,
        postgresql_where=sa.text("status = 'tentative' AND payment_due_at IS NOT NULL"),
        sqlite_where=sa.text("status = 'tentative' AND payment_due_at IS NOT NULL"),
    )
    op.create_index(
        "ix_bookings_resource_start", "bookings", ["resource_id", "start_time"], unique=False
    )
    op.create_table(
        "booking_holds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("booking_id", sa.Uuid(), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("start_time", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end_time", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.CheckConstraint("end_time > start_time", name=op.f("ck_booking_holds_span")),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_booking_holds_booking_id_bookings")
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["resources.id"], name=op.f("fk_booking_holds_resource_id_resources")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_holds")),
    )
    op.create_index(
        "ix_booking_holds_resource_start",
        "booking_holds",
        ["resource_id", "start_time", "end_time"],
        unique=False,
    )
    op.create_index(
        "uq_booking_holds_booking_resource",
        "booking_holds",
        ["booking_id", "resource_id"],
        unique=True,
    )
    op.create_table(
        "booking_transitions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("booking_id", sa.Uuid(), nullable=False),
        sa.Column("from_status", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("to_status", sa.String(length=32), nullable=False),
        sa.Column("at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("actor_key_id", sa.Uuid(), nullable=True),
        sa.Column(
            "meta",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_booking_transitions_booking_id_bookings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_transitions")),
    )
    op.create_index(
        "ix_booking_transitions_booking", "booking_transitions", ["booking_id", "at"], unique=False
    )
    op.create_table(
        "events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("booking_id", sa.Uuid(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name=op.f("fk_events_app_id_apps")),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_events_booking_id_bookings")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_events")),
        sa.UniqueConstraint("id", name=op.f("uq_events_id")),
    )
    op.create_index("ix_events_app_seq", "events", ["app_id", "seq"], unique=False)
    op.create_index("ix_events_booking_seq", "events", ["booking_id", "seq"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # Invariant 1: no two active holds of one resource overlap. Enforced by PostgreSQL itself;
        # a violation is SQLSTATE 23P01, which the services turn into 409 slot_unavailable.
        # (On SQLite every transaction is BEGIN IMMEDIATE, so check-then-write is serial.)
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE booking_holds ADD CONSTRAINT ex_booking_holds_no_overlap "
            "EXCLUDE USING gist (resource_id WITH =, "
            "tstzrange(start_time, end_time, '[)') WITH &&) WHERE (active)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE booking_holds DROP CONSTRAINT ex_booking_holds_no_overlap")
    op.drop_index("ix_events_booking_seq", table_name="events")
    op.drop_index("ix_events_app_seq", table_name="events")
    op.drop_table("events")
    op.drop_index("ix_booking_transitions_booking", table_name="booking_transitions")
    op.drop_table("booking_transitions")
    op.drop_index("uq_booking_holds_booking_resource", table_name="booking_holds")
    op.drop_index("ix_booking_holds_resource_start", table_name="booking_holds")
    op.drop_table("booking_holds")
    op.drop_index("ix_bookings_resource_start", table_name="bookings")
    op.drop_index(
        "ix_bookings_payment_due",
        table_name="bookings",
        postgresql_where=sa.text("status = 'tentative' AND payment_due_at IS NOT NULL"),
        sqlite_where=sa.text("status = 'tentative' AND payment_due_at IS NOT NULL"),
    )
    op.drop_index("ix_bookings_owner", table_name="bookings")
    op.drop_index("ix_bookings_client", table_name="bookings")
    op.drop_index("ix_bookings_app_start", table_name="bookings")
    op.drop_table("bookings")
    op.drop_index("ix_resources_app_created", table_name="resources")
    op.drop_table("resources")
    op.drop_index(
        "uq_clients_app_email",
        table_name="clients",
        postgresql_where=sa.text("email IS NOT NULL"),
        sqlite_where=sa.text("email IS NOT NULL"),
    )
    op.drop_index("ix_clients_app_created", table_name="clients")
    op.drop_table("clients")
    op.drop_index(op.f("ix_api_keys_app_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("apps")
