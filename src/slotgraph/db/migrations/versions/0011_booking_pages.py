"""booking pages: /book/{slug}, and the page a booking was made through

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import slotgraph.db.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_TS = slotgraph.db.types.UTCDateTime(timezone=True)
_SECONDS = slotgraph.db.types.Seconds()
_JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "booking_pages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("resource_ids", _JSON, nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("durations", _JSON, nullable=False),
        sa.Column("graph", sa.String(length=32), nullable=False),
        sa.Column("fields", _JSON, nullable=False),
        sa.Column("locale", sa.String(length=35), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("min_cancel_notice", _SECONDS, nullable=False),
        sa.Column("min_reschedule_notice", _SECONDS, nullable=False),
        sa.Column("reminder", _SECONDS, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("archived_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name=op.f("fk_booking_pages_app_id_apps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_pages")),
    )
    # Slugs are unique on the server among live pages (an archived page keeps its row).
    op.create_index(
        "uq_booking_pages_slug",
        "booking_pages",
        ["slug"],
        unique=True,
        postgresql_where=sa.text("archived_at IS NULL"),
        sqlite_where=sa.text("archived_at IS NULL"),
    )
    op.create_index("ix_booking_pages_app_created", "booking_pages", ["app_id", "created_at", "id"])
    # Plain ADD COLUMN (no batch rebuild of bookings on SQLite); PostgreSQL gets the foreign key.
    op.add_column("bookings", sa.Column("page_id", sa.Uuid(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key(
            op.f("fk_bookings_page_id_booking_pages"),
            "bookings",
            "booking_pages",
            ["page_id"],
            ["id"],
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(
            op.f("fk_bookings_page_id_booking_pages"), "bookings", type_="foreignkey"
        )
    op.execute("ALTER TABLE bookings DROP COLUMN page_id")
    op.drop_table("booking_pages")
