"""Named queries: the ones that are reused or not obvious."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Table,
    bindparam,
    exists,
    literal,
    or_,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from slotgraph.db import driver_sql, insert_plans
from slotgraph.db.insert_plans import RESOURCE_VERSION
from slotgraph.db.models import Booking, BookingHold, Client, Resource

# Hot statements are built once, with bind parameters: SQLAlchemy then skips building and
# compiling them on every request (ADR 0005).
_OVERLAPPING = (
    select(BookingHold.booking_id.label("id"), Booking.status, Booking.payment_due_at)
    .select_from(BookingHold)
    .outerjoin(Booking, BookingHold.booking_id == Booking.id)
    .where(
        BookingHold.resource_id == bindparam("resource_id"),
        BookingHold.active.is_(True),
        BookingHold.start_time < bindparam("end", type_=BookingHold.end_time.type),
        BookingHold.end_time > bindparam("start", type_=BookingHold.start_time.type),
        # (a block's hold has no booking: NULL != x is not true, so say it explicitly)
        or_(BookingHold.booking_id.is_(None), BookingHold.booking_id != bindparam("exclude")),
    )
)


async def overlapping_holds(
    session: AsyncSession,
    resource_id: uuid.UUID,
    start: datetime,
    end: datetime,
    *,
    exclude_booking_id: uuid.UUID | None = None,
) -> Sequence[Row[uuid.UUID | None, str | None, datetime | None]]:
    """Active holds on `resource_id` overlapping `[start, end)`: (booking_id, status, due).

    A block of time off has no booking: (None, None, None). A new booking has no id to exclude
    yet; the nil UUID matches nothing.
    """
    conn = await session.connection()
    params = {
        "resource_id": resource_id,
        "start": start,
        "end": end,
        "exclude": exclude_booking_id or uuid.UUID(int=0),
    }
    return (await conn.execute(_OVERLAPPING, params)).all()


async def lock_bookings(
    session: AsyncSession, ids: Sequence[uuid.UUID], *, skip_locked: bool = False
) -> list[Booking]:
    """Load bookings with a row lock, in id order (a fixed order cannot deadlock).

    `populate_existing` refreshes objects already in the session with the locked row's values.
    On SQLite FOR UPDATE is not rendered; there the whole transaction already holds the lock.
    `skip_locked` (PostgreSQL): leave out the bookings another transaction has locked.
    """
    if not ids:
        return []
    stmt = (
        select(Booking)
        .where(Booking.id.in_(sorted(set(ids))))
        .order_by(Booking.id)
        .with_for_update(skip_locked=skip_locked)
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(stmt)).all())


def has_exclusion_constraint(session: AsyncSession) -> bool:
    """PostgreSQL enforces "no two active holds overlap" itself (ex_booking_holds_no_overlap)."""
    return session.bind is not None and session.bind.dialect.name == "postgresql"


# The database's refusal of a booking hold over a block (a trigger on both backends, ADR 0007).
NO_BLOCK_OVERLAP = "booking_holds_no_block_overlap"


def is_exclusion_violation(exc: DBAPIError) -> bool:
    """True when the database refused an overlapping booking hold: PostgreSQL SQLSTATE 23P01
    (exclusion_violation, from the constraint or the block trigger), whichever driver raised it,
    or SQLite's block trigger."""
    orig = exc.orig
    if NO_BLOCK_OVERLAP in str(orig):
        return True
    for candidate in (orig, getattr(orig, "__cause__", None)):
        if getattr(candidate, "sqlstate", None) == "23P01":
            return True
    return False


# A resource as locked for a booking: a plain row with the columns of `resources`.
ResourceRow = Row[Any]


# A column that another rule computes in the same read (an Idempotency-Key taken: its claim, see
# insert_rows), and its bind values. The column must be module-level (statements are cached by it).
Probe = tuple[ColumnElement[bool], dict[str, Any]]


class ClaimTaken(Exception):
    """The key of a claim (insert_rows) was found taken, by the read's probe or by the write
    itself: nothing was written."""


@functools.cache
def _lock_statement(
    *,
    hold: bool,
    with_client: bool,
    one: bool,
    lock: bool = True,
    probe: ColumnElement[bool] | None = None,
) -> Select[Any]:
    client_ok: ColumnElement[bool] = literal(True)
    if with_client:
        client_ok = exists().where(
            Client.id == bindparam("client_id"), Client.app_id == bindparam("app_id")
        )
    extra = [] if probe is None else [probe.label("probe")]
    stmt = (
        select(*Resource.__table__.c, client_ok.label("client_ok"), *extra)
        .where(
            Resource.id == bindparam("id")
            if one
            else Resource.id.in_(bindparam("ids", expanding=True)),
            Resource.app_id == bindparam("app_id"),
        )
        .order_by(Resource.id)
    )
    if not lock:
        return stmt.add_columns(RESOURCE_VERSION.label("row_version"))
    return stmt.with_for_update(read=not hold, key_share=hold, of=Resource.__table__)


async def lock_resources(
    session: AsyncSession,
    app_id: uuid.UUID,
    ids: Iterable[uuid.UUID],
    *,
    hold: bool,
    client_id: uuid.UUID | None = None,
    optimistic: driver_sql.Autocommit | None = None,
    probe: Probe | None = None,
) -> tuple[dict[uuid.UUID, ResourceRow], bool]:
    """Load and row-lock resources of `app_id`, in id order; and whether `client_id` exists.

    `hold=True` (the transaction will write active holds): FOR NO KEY UPDATE. It serialises the
    transactions that take time on a resource, so the overlap check that follows is exact and
    two inserts can never wait for each other inside the exclusion constraint (ADR 0001).
    `hold=False`: FOR SHARE, which is enough to keep the resource from being archived meanwhile.
    Neither blocks readers or the foreign-key checks of other transactions. Rows are locked in
    id order, so waits cannot form a cycle. On SQLite no lock is rendered: BEGIN IMMEDIATE
    already serialises writers.

    `optimistic` (PostgreSQL, one resource: the optimistic create's connection, ADR 0005): read
    on it without a lock, with the row's version in `row_version`. The caller's write then
    locks the row itself and checks that version (`insert_rows(..., unless_changed=...)`), so
    what it decided from the row still holds. No row found: RowChanged (the locked way, in the
    session, says what is missing).

    The client check rides along in the same statement: one round trip fewer per booking. So
    does `probe` (a claim's key, e.g. an Idempotency-Key): if it is true, ClaimTaken.
    """
    wanted = sorted(set(ids))
    if not wanted:
        raise ValueError("lock_resources needs at least one resource id")
    one = len(wanted) == 1  # the common case, without an expanding IN to render per call
    stmt = _lock_statement(
        hold=hold,
        with_client=client_id is not None,
        one=one,
        lock=optimistic is None,
        probe=None if probe is None else probe[0],
    )
    params = {"id": wanted[0], "ids": wanted, "app_id": app_id, "client_id": client_id}
    if probe is not None:
        params.update(probe[1])
    rows: Sequence[Any]
    if optimistic is None:
        rows = (await (await session.connection()).execute(stmt, params)).all()
    else:  # PostgreSQL in autocommit (the optimistic create): straight on the driver
        prepared = _prepared(stmt, optimistic.dialect)
        rows = await driver_sql.fetch_autocommit(optimistic, prepared, prepared.arguments(params))
        if not rows:
            raise RowChanged(f"no resource {wanted[0]} to book optimistically")
    if probe is not None and rows and rows[0].probe:
        raise ClaimTaken("the claim's key is taken")
    if not rows:
        # No resource: still answer the client question (it decides which error comes first).
        if client_id is None:
            return {}, True
        client = await session.get(Client, client_id)
        return {}, client is not None and client.app_id == app_id
    return {r.id: r for r in rows}, bool(rows[0].client_ok)


@functools.lru_cache(maxsize=64)
def _prepared(stmt: Select[Any], dialect: Dialect) -> driver_sql.Prepared:
    return driver_sql.prepare(stmt, dialect)


# A row to insert: its table and its column values (every column with a Python default set).
NewRow = tuple[Table, dict[str, Any]]


# "Only if this resource row is still at this version" (see lock_resources(lock=False)).
Unchanged = tuple[uuid.UUID, str]
# A row written before all others, and the rule that decides, when its key is taken already,
# whether it replaces that row (returns it) or not (returns none): then nothing is written.
# The rule turns an INSERT into one with ON CONFLICT ... RETURNING; it must be a
# module-level function (statements are cached by it).
Claim = tuple[NewRow, Callable[[Any], Any]]


class RowChanged(Exception):
    """insert_rows(unless_changed=...) found the row changed (or gone), or its claim taken: it
    wrote nothing."""


async def insert_rows(
    session: AsyncSession,
    rows: Sequence[NewRow],
    *,
    unless_changed: Unchanged | None = None,
    claim: Claim | None = None,
    optimistic: driver_sql.Autocommit | None = None,
) -> None:
    """INSERT new rows, in order (parents first), without the unit of work.

    On PostgreSQL this is one statement and one round trip: every table but the last is a
    data-modifying CTE (foreign keys are checked at the end of the statement, so a child may
    reference a parent inserted beside it). Rows of one table go into one multi-row VALUES, in
    the order given, so events keep their order. On SQLite, one INSERT per table (a claim's
    first), all of them in one call to the driver's thread (driver_sql.run_sqlite).

    `unless_changed=(resource_id, version)` (PostgreSQL): the statement first locks that
    resource row FOR NO KEY UPDATE, as lock_resources(hold=True) would, and inserts every row
    only if the row is still at `version`; otherwise it inserts nothing and raises RowChanged.
    One statement is atomic, so it needs no transaction of its own: it is sent on the
    `optimistic` connection (the read's, lock_resources), where it commits by itself.

    `claim` (a row and its conflict rule, e.g. an Idempotency-Key's answer) is written first
    (after the lock, with `unless_changed`), and every other row only if the claim's row was:
    else nothing is written, and ClaimTaken is raised (RowChanged with `unless_changed`, where
    the one statement cannot tell which of the two it was).
    """
    by_table: dict[Table, list[dict[str, Any]]] = {}
    for table, new in rows:
        same_table = by_table.setdefault(table, [])
        assert not same_table or same_table[0].keys() == new.keys(), "one shape per table"
        same_table.append(new)
    shape = tuple((table, tuple(found[0]), len(found)) for table, found in by_table.items())
    claimed, claim_values = None, []
    if claim is not None:
        (claim_table, given), rule = claim
        claimed, claim_values = (claim_table, tuple(given), rule), list(given.values())
    assert (optimistic is None) == (unless_changed is None), "a gated write is optimistic"
    conn: AsyncConnection | None = None
    if optimistic is not None:
        dialect = optimistic.dialect
    else:
        conn = await session.connection()
        dialect = conn.dialect
    if dialect.name == "postgresql":
        plan = insert_plans.insert_plan(
            dialect, shape, gated=unless_changed is not None, claim=claimed
        )
        values = [*(unless_changed or ()), *claim_values]
        for pick, table_rows in zip(plan.picks, by_table.values(), strict=True):
            for row in table_rows:
                values.extend(pick(row))
        ordered = plan.ordered(values)
        if optimistic is not None:  # the optimistic create, in autocommit: on the driver
            written = await driver_sql.execute_autocommit(
                optimistic, plan.prepared, plan.prepared.convert(ordered)
            )
        else:
            assert conn is not None
            written = (await driver_sql.run_positional(conn, plan.prepared, ordered)).rowcount
        if unless_changed is not None and not written:
            raise RowChanged(f"resource {unless_changed[0]} changed since it was read")
        if claimed is not None and not written:
            raise ClaimTaken("the claim's key is taken")
        return
    assert conn is not None, "row versions are PostgreSQL's"
    steps: list[driver_sql.Step] = []
    if claimed is not None:
        steps.append((insert_plans.claim_plan(conn.dialect, *claimed).prepared, claim_values, True))
    for t, (one, table_rows) in enumerate(zip(shape, by_table.values(), strict=True)):
        plan = insert_plans.insert_plan(conn.dialect, (one,), t)
        values = []
        for row in table_rows:
            values.extend(plan.picks[0](row))
        steps.append((plan.prepared, plan.ordered(values), False))
    if not await driver_sql.run_sqlite(conn, steps):
        raise ClaimTaken("the claim's key is taken")
