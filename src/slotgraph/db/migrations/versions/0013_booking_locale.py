"""booking locale: the locale a booking was made in, so the customer's emails speak it

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 02:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch): rebuilding `bookings` on SQLite would trip its foreign keys.
    op.add_column("bookings", sa.Column("locale", sa.String(length=35), nullable=True))
    # Bookings made on a page before: its locale now (the best guess there is).
    op.execute(
        "UPDATE bookings SET locale = "
        "(SELECT booking_pages.locale FROM booking_pages WHERE booking_pages.id = bookings.page_id)"
        " WHERE page_id IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE bookings DROP COLUMN locale")
