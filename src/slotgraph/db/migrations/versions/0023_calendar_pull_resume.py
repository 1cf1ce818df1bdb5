"""calendar_connections.pull_resume: where the next pull of a calendar larger than a pull reads
goes on reading

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01 07:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Before, the objects a pull left unread (its budget spent) kept their blocks until the next
    # full sync, which read the calendar in the same order and left the same ones unread: a
    # moved event there stayed busy at its old time for a day, or for good.
    op.add_column(
        "calendar_connections", sa.Column("pull_resume", sa.String(length=2048), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("calendar_connections", "pull_resume")
