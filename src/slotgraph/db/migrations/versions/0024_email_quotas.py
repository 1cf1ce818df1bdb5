"""email_quotas: the customer emails an app sent one inbox in the last hour (ADR 0020)

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import slotgraph.db.types

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

_TS = slotgraph.db.types.UTCDateTime(timezone=True)
_JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Before, nothing counted emails per recipient: with the public key alone, one client address
    # could have about 1,200 emails a minute sent to any inbox (docs/security.md).
    op.create_table(
        "email_quotas",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("sends", _JSON, nullable=False),
        sa.Column("warned_at", _TS, nullable=True),
        sa.Column("suppressed", sa.Integer(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("app_id", "address", name=op.f("pk_email_quotas")),
    )
    op.create_index("ix_email_quotas_updated", "email_quotas", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_email_quotas_updated", table_name="email_quotas")
    op.drop_table("email_quotas")
