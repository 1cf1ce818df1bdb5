"""calendar connections: two-way CalDAV sync per resource; pulled blocks know their origin

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 19:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import slotgraph.db.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TS = slotgraph.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "calendar_connections",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("username", sa.String(length=320), nullable=False),
        sa.Column("password_encrypted", sa.Text(), nullable=False),
        sa.Column("push", sa.Boolean(), nullable=False),
        sa.Column("pull", sa.Boolean(), nullable=False),
        sa.Column("sync_token", sa.String(length=1000), nullable=True),
        sa.Column("last_full_sync_at", _TS, nullable=True),
        sa.Column("next_sync_at", _TS, nullable=False),
        sa.Column("last_sync_at", _TS, nullable=True),
        sa.Column("last_success_at", _TS, nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("last_error_at", _TS, nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", _TS, nullable=True),
        sa.Column("locked_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_calendar_connections_app_id_apps")
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resources.id"],
            name=op.f("fk_calendar_connections_resource_id_resources"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_connections")),
    )
    op.create_index(
        "uq_calendar_connections_resource", "calendar_connections", ["resource_id"], unique=True
    )
    op.create_index("ix_calendar_connections_due", "calendar_connections", ["next_sync_at"])
    # Plain ADD COLUMN: rebuilding resource_blocks on SQLite would trip the foreign keys that
    # point at it. On SQLite the new column carries no foreign key (ADD COLUMN could add one,
    # but then it could never be dropped again); PostgreSQL gets the constraint.
    op.add_column("resource_blocks", sa.Column("calendar_id", sa.Uuid(), nullable=True))
    op.add_column(
        "resource_blocks", sa.Column("calendar_href", sa.String(length=2048), nullable=True)
    )
    op.add_column(
        "resource_blocks", sa.Column("calendar_uid", sa.String(length=500), nullable=True)
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key(
            op.f("fk_resource_blocks_calendar_id_calendar_connections"),
            "resource_blocks",
            "calendar_connections",
            ["calendar_id"],
            ["id"],
        )
    op.create_index(
        "ix_resource_blocks_calendar", "resource_blocks", ["calendar_id", "calendar_href"]
    )
    # A calendar's push channel is a delivery target beside the webhook endpoints.
    op.add_column("webhook_endpoints", sa.Column("calendar_id", sa.Uuid(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key(
            op.f("fk_webhook_endpoints_calendar_id_calendar_connections"),
            "webhook_endpoints",
            "calendar_connections",
            ["calendar_id"],
            ["id"],
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(
            op.f("fk_webhook_endpoints_calendar_id_calendar_connections"),
            "webhook_endpoints",
            type_="foreignkey",
        )
    op.execute("ALTER TABLE webhook_endpoints DROP COLUMN calendar_id")
    op.drop_index("ix_resource_blocks_calendar", "resource_blocks")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(
            op.f("fk_resource_blocks_calendar_id_calendar_connections"),
            "resource_blocks",
            type_="foreignkey",
        )
    for column in ("calendar_uid", "calendar_href", "calendar_id"):
        op.execute(f"ALTER TABLE resource_blocks DROP COLUMN {column}")
    op.drop_table("calendar_connections")
