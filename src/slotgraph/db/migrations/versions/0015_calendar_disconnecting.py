"""calendar disconnecting: a connection whose pushed events the worker is removing

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 16:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import slotgraph.db.types

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_ACTIVE = "disconnected_at IS NULL"
_TS = slotgraph.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    # Disconnect with remove_pushed keeps the connection (its account) until the worker has
    # removed the pushed events (services/calendar_connections.py): before, the removal ran
    # inside the request, for up to 300 s. The resource may be connected again meanwhile.
    op.add_column("calendar_connections", sa.Column("disconnected_at", _TS))
    op.drop_index("uq_calendar_connections_resource", table_name="calendar_connections")
    op.create_index(
        "uq_calendar_connections_resource",
        "calendar_connections",
        ["resource_id"],
        unique=True,
        postgresql_where=sa.text(_ACTIVE),
        sqlite_where=sa.text(_ACTIVE),
    )


def downgrade() -> None:
    gone = "SELECT id FROM calendar_connections WHERE disconnected_at IS NOT NULL"
    op.execute(f"UPDATE webhook_endpoints SET calendar_id = NULL WHERE calendar_id IN ({gone})")
    op.execute("DELETE FROM calendar_connections WHERE disconnected_at IS NOT NULL")
    op.drop_index("uq_calendar_connections_resource", table_name="calendar_connections")
    op.create_index(
        "uq_calendar_connections_resource", "calendar_connections", ["resource_id"], unique=True
    )
    op.drop_column("calendar_connections", "disconnected_at")
