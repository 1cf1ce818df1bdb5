"""the fan-out's queue: events_undispatched, filled by a trigger; events are never updated

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# An event inserted without `dispatched_at` (every event but `webhook.test`, whose delivery is
# written with it) is queued in the same statement, so in the same transaction.
_PG_FUNCTION = """
CREATE FUNCTION events_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events_undispatched (seq) VALUES (NEW.seq);
    RETURN NULL;
END
$$
"""
_PG_TRIGGER = (
    "CREATE TRIGGER events_queued AFTER INSERT ON events "
    "FOR EACH ROW WHEN (NEW.dispatched_at IS NULL) EXECUTE FUNCTION events_queued()"
)
_SQLITE_TRIGGER = (
    "CREATE TRIGGER events_queued AFTER INSERT ON events "
    "FOR EACH ROW WHEN NEW.dispatched_at IS NULL "
    "BEGIN INSERT INTO events_undispatched (seq) VALUES (NEW.seq); END"
)


def upgrade() -> None:
    # The fan-out marked each event dispatched: on PostgreSQL a new version of the whole row
    # (its payload, about 1.4 KB) and an entry in each of its four indexes, after a lock of the
    # row; half the WAL of a delivery (ADR 0017). A row of this queue is deleted instead.
    pg = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "events_undispatched",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
    )
    op.execute(
        "INSERT INTO events_undispatched (seq) SELECT seq FROM events WHERE dispatched_at IS NULL"
    )
    if pg:
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        op.execute(_SQLITE_TRIGGER)
    op.drop_index("ix_events_undispatched", table_name="events")


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.execute("DROP TRIGGER events_queued ON events")
        op.execute("DROP FUNCTION events_queued()")
    else:
        op.execute("DROP TRIGGER events_queued")
    # Fanned out since the upgrade, so never marked: marked now, at the time they were made
    # (the time of their fan-out was not kept).
    op.execute(
        "UPDATE events SET dispatched_at = created_at WHERE dispatched_at IS NULL AND NOT EXISTS "
        "(SELECT 1 FROM events_undispatched AS u WHERE u.seq = events.seq)"
    )
    op.create_index(
        "ix_events_undispatched",
        "events",
        ["seq"],
        postgresql_where=sa.text("dispatched_at IS NULL"),
        sqlite_where=sa.text("dispatched_at IS NULL"),
    )
    op.drop_table("events_undispatched")
