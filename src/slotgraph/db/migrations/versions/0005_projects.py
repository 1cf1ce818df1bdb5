"""projects (the Timekit adapter's widget projects)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 19:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import slotgraph.db.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("resource_ids", JSON, nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("created_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("archived_at", slotgraph.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name=op.f("fk_projects_app_id_apps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    op.create_index("uq_projects_app_slug", "projects", ["app_id", "slug"], unique=True)
    op.create_index("ix_projects_app_created", "projects", ["app_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_projects_app_created", table_name="projects")
    op.drop_index("uq_projects_app_slug", table_name="projects")
    op.drop_table("projects")
