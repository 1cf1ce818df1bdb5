"""availability rules and blocks

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 07:03:25.578091
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import slotgraph.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _seconds(name: str, default: int | None) -> sa.Column[int]:
    server_default = None if default is None else sa.text(str(default))
    return sa.Column(
        name, slotgraph.db.types.Seconds(), nullable=default is None, server_default=server_default
    )


JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "resource_blocks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("start_time", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end_time", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_resource_blocks_app_id_apps")
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["resources.id"], name=op.f("fk_resource_blocks_resource_id_resources")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resource_blocks")),
    )
    op.create_index("ix_resource_blocks_resource", "resource_blocks", ["resource_id", "start_time"])
    # A hold belongs to a booking or to a block (time off), never both.
    with op.batch_alter_table("booking_holds") as batch:
        batch.add_column(sa.Column("block_id", sa.Uuid(), nullable=True))
        batch.alter_column("booking_id", existing_type=sa.Uuid(), nullable=True)
        batch.create_foreign_key(
            op.f("fk_booking_holds_block_id_resource_blocks"),
            "resource_blocks",
            ["block_id"],
            ["id"],
        )
        batch.create_check_constraint("owner", "(booking_id IS NULL) <> (block_id IS NULL)")
    # Plain ADD COLUMN (SQLite supports it natively): a batch "move and copy" would drop these
    # tables, which other tables reference, and fail on a database that has rows.
    op.add_column("bookings", sa.Column("resource_ids", JSON, nullable=True))
    op.add_column("resources", sa.Column("weekly_hours", JSON, nullable=True))
    op.add_column("resources", sa.Column("exceptions", JSON, nullable=False, server_default="[]"))
    for name, default in (
        ("buffer_before", 0),
        ("buffer_after", 0),
        ("min_notice", 0),
        ("max_advance", None),
        ("min_duration", None),
        ("max_duration", None),
        ("slot_step", 900),
    ):
        op.add_column("resources", _seconds(name, default))


def downgrade() -> None:
    for name in (
        "slot_step",
        "max_duration",
        "min_duration",
        "max_advance",
        "min_notice",
        "buffer_after",
        "buffer_before",
        "exceptions",
        "weekly_hours",
    ):
        op.drop_column("resources", name)  # plain DROP COLUMN (SQLite >= 3.35), see upgrade
    op.drop_column("bookings", "resource_ids")
    op.execute("DELETE FROM booking_holds WHERE booking_id IS NULL")
    with op.batch_alter_table("booking_holds") as batch:
        batch.drop_constraint(op.f("ck_booking_holds_owner"), type_="check")
        batch.drop_constraint(op.f("fk_booking_holds_block_id_resource_blocks"), type_="foreignkey")
        batch.alter_column("booking_id", existing_type=sa.Uuid(), nullable=False)
        batch.drop_column("block_id")
    op.drop_index("ix_resource_blocks_resource", table_name="resource_blocks")
    op.drop_table("resource_blocks")
