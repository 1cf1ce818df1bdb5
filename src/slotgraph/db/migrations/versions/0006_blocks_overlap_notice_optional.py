"""blocks may overlap; min_notice optional

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 19:30:00.000000

- Blocks are busy time from outside: they may overlap blocks and bookings. A booking's active hold
  still may overlap neither (ADR 0007). PostgreSQL: the exclusion constraint now covers booking
  holds only, and a trigger refuses a booking hold over an active block after locking the resource
  row (which a block's hold locks too, so the two writers are serialised). SQLite: the same
  trigger (its transactions are serialised already).
- `resources.min_notice` becomes nullable (no notice: the secret key may book in the past).
  Existing rows with the old default 0 become NULL: PT0S was never chosen, only defaulted.
  Downgrading sets NULL back to 0; it fails while blocks overlap other busy time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_PG_FUNCTION = """
CREATE FUNCTION booking_holds_busy_time() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Every writer of active holds locks the resource row first (services do it before they
    -- check; this repeats it for any code that does not), so a block and a booking on one
    -- resource never commit side by side unseen. Each query below takes a fresh snapshot.
    PERFORM 1 FROM resources WHERE id = NEW.resource_id FOR NO KEY UPDATE;
    IF NEW.booking_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM booking_holds b
        WHERE b.resource_id = NEW.resource_id AND b.active AND b.block_id IS NOT NULL
          AND tstzrange(b.start_time, b.end_time, '[)')
              && tstzrange(NEW.start_time, NEW.end_time, '[)')
    ) THEN
        RAISE EXCEPTION 'booking_holds_no_block_overlap: a booking over a block (resource %)',
            NEW.resource_id
            USING ERRCODE = 'exclusion_violation', CONSTRAINT = 'booking_holds_no_block_overlap';
    END IF;
    RETURN NEW;
END
$$
"""

_SQLITE_CHECK = """
BEGIN
    SELECT RAISE(ABORT, 'booking_holds_no_block_overlap') FROM booking_holds b
    WHERE b.resource_id = NEW.resource_id AND b.active AND b.block_id IS NOT NULL
      AND b.start_time < NEW.end_time AND b.end_time > NEW.start_time;
END
"""

_EXCLUDE = (
    "ALTER TABLE booking_holds ADD CONSTRAINT ex_booking_holds_no_overlap "
    "EXCLUDE USING gist (resource_id WITH =, tstzrange(start_time, end_time, '[)') WITH &&) "
)


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.execute("ALTER TABLE booking_holds DROP CONSTRAINT ex_booking_holds_no_overlap")
        op.execute(_EXCLUDE + "WHERE (active AND booking_id IS NOT NULL)")
        op.execute(
            "CREATE INDEX ix_booking_holds_block_spans ON booking_holds USING gist "
            "(resource_id, tstzrange(start_time, end_time, '[)')) "
            "WHERE active AND block_id IS NOT NULL"
        )
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER booking_holds_busy_time BEFORE INSERT OR UPDATE ON booking_holds "
            "FOR EACH ROW WHEN (NEW.active) EXECUTE FUNCTION booking_holds_busy_time()"
        )
        op.alter_column(
            "resources",
            "min_notice",
            existing_type=sa.Integer(),
            nullable=True,
            server_default=None,
        )
    else:
        op.execute(
            "CREATE INDEX ix_booking_holds_block_spans ON booking_holds (resource_id, end_time) "
            "WHERE active AND block_id IS NOT NULL"
        )
        op.execute(
            "CREATE TRIGGER booking_holds_no_block_overlap_insert BEFORE INSERT ON booking_holds "
            "FOR EACH ROW WHEN NEW.active AND NEW.booking_id IS NOT NULL " + _SQLITE_CHECK
        )
        op.execute(
            "CREATE TRIGGER booking_holds_no_block_overlap_update "
            "BEFORE UPDATE OF active, resource_id, start_time, end_time ON booking_holds "
            "FOR EACH ROW WHEN NEW.active AND NEW.booking_id IS NOT NULL " + _SQLITE_CHECK
        )
        # Plain ALTER TABLE (no batch copy: other tables reference `resources`).
        op.execute("ALTER TABLE resources ADD COLUMN min_notice_new INTEGER")
        op.execute("UPDATE resources SET min_notice_new = min_notice")
        op.execute("ALTER TABLE resources DROP COLUMN min_notice")
        op.execute("ALTER TABLE resources RENAME COLUMN min_notice_new TO min_notice")
    op.execute("UPDATE resources SET min_notice = NULL WHERE min_notice = 0")


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    op.execute("UPDATE resources SET min_notice = 0 WHERE min_notice IS NULL")
    if pg:
        op.alter_column(
            "resources",
            "min_notice",
            existing_type=sa.Integer(),
            nullable=False,
            server_default=sa.text("0"),
        )
        op.execute("DROP TRIGGER booking_holds_busy_time ON booking_holds")
        op.execute("DROP FUNCTION booking_holds_busy_time()")
        op.execute("DROP INDEX ix_booking_holds_block_spans")
        op.execute("ALTER TABLE booking_holds DROP CONSTRAINT ex_booking_holds_no_overlap")
        op.execute(_EXCLUDE + "WHERE (active)")
    else:
        op.execute("ALTER TABLE resources ADD COLUMN min_notice_old INTEGER NOT NULL DEFAULT 0")
        op.execute("UPDATE resources SET min_notice_old = min_notice")
        op.execute("ALTER TABLE resources DROP COLUMN min_notice")
        op.execute("ALTER TABLE resources RENAME COLUMN min_notice_old TO min_notice")
        op.execute("DROP TRIGGER booking_holds_no_block_overlap_update")
        op.execute("DROP TRIGGER booking_holds_no_block_overlap_insert")
        op.execute("DROP INDEX ix_booking_holds_block_spans")
