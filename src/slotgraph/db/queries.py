"""Named queries: the ones that are reused or not obvious."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    Row,
    Select,
    String,
    Table,
    bindparam,
    exists,
    insert,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db import driver_sql
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


async def lock_bookings(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[Booking]:
    """Load bookings with a row lock, in id order (a fixed order cannot deadlock).

    `populate_existing` refreshes objects already in the session with the locked row's values.
    On SQLite FOR UPDATE is not rendered; there the whole transaction already holds the lock.
    """
    if not ids:
        return []
    stmt = (
        select(Booking)
        .where(Booking.id.in_(sorted(set(ids))))
        .order_by(Booking.id)
        .with_for_update()
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


# The row's version on PostgreSQL: its xmin changes with every UPDATE of the row, and not when it is
# only locked. An optimistic read takes it; the write that depends on the read checks it.
_resource_version: ColumnElement[str] = literal_column("resources.xmin::text", String)


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
        return stmt.add_columns(_resource_version.label("row_version"))
    return stmt.with_for_update(read=not hold, key_share=hold, of=Resource.__table__)


async def lock_resources(
    session: AsyncSession,
    app_id: uuid.UUID,
    ids: Iterable[uuid.UUID],
    *,
    hold: bool,
    client_id: uuid.UUID | None = None,
    lock: bool = True,
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

    `lock=False` (PostgreSQL, one resource): read without a lock, with the row's version in
    `row_version`. The caller's write then locks the row itself and checks that version
    (`insert_rows(..., unless_changed=...)`), so what it decided from the row still holds.

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
        lock=lock,
        probe=None if probe is None else probe[0],
    )
    params = {"id": wanted[0], "ids": wanted, "app_id": app_id, "client_id": client_id}
    if probe is not None:
        params.update(probe[1])
    conn = await session.connection()
    rows = (await conn.execute(stmt, params)).all()
    if probe is not None and rows and rows[0].probe:
        raise ClaimTaken("the claim's key is taken")
    if not rows:
        # No resource: still answer the client question (it decides which error comes first).
        if client_id is None:
            return {}, True
        client = await session.get(Client, client_id)
        return {}, client is not None and client.app_id == app_id
    return {r.id: r for r in rows}, bool(rows[0].client_ok)


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
) -> None:
    """INSERT new rows, in order (parents first), without the unit of work.

    On PostgreSQL this is one statement and one round trip: every table but the last is a
    data-modifying CTE (foreign keys are checked at the end of the statement, so a child may
    reference a parent inserted beside it). Rows of one table go into one multi-row VALUES, in
    the order given, so events keep their order. On SQLite, one INSERT per table.

    `unless_changed=(resource_id, version)` (PostgreSQL): the statement first locks that
    resource row FOR NO KEY UPDATE, as lock_resources(hold=True) would, and inserts every row
    only if the row is still at `version`; otherwise it inserts nothing and raises RowChanged.
    One statement is atomic, so it needs no transaction of its own.

    `claim` (a row and its conflict rule, e.g. an Idempotency-Key's answer) is written first
    (after the lock, with `unless_changed`), and every other row only if the claim's row was:
    else nothing is written, and ClaimTaken is raised (RowChanged with `unless_changed`, where
    the one statement cannot tell which of the two it was).
    """
    by_table: dict[Table, list[dict[str, Any]]] = {}
    for table, values in rows:
        same_table = by_table.setdefault(table, [])
        assert not same_table or same_table[0].keys() == values.keys(), "one shape per table"
        same_table.append(values)
    conn = await session.connection()
    params: dict[str, Any] = {}
    for t, table_rows in enumerate(by_table.values()):
        for r, row in enumerate(table_rows):
            params.update({f"p{t}_{r}_{key}": value for key, value in row.items()})
    shape = tuple((table, tuple(found[0]), len(found)) for table, found in by_table.items())
    claimed = None
    if claim is not None:
        (claim_table, claim_values), rule = claim
        params.update({f"c_{key}": value for key, value in claim_values.items()})
        claimed = (claim_table, tuple(claim_values), rule)
    if unless_changed is not None:
        assert conn.dialect.name == "postgresql", "row versions are PostgreSQL's"
        params["gate_id"], params["gate_version"] = unless_changed
        prepared = _prepared_insert(conn.dialect, shape, gated=True, claim=claimed)
        done = await driver_sql.run(conn, prepared, params)
        if not done.rowcount:
            raise RowChanged(f"resource {unless_changed[0]} changed since it was read")
        return
    if conn.dialect.name == "postgresql":
        done = await driver_sql.run(
            conn, _prepared_insert(conn.dialect, shape, claim=claimed), params
        )
        if claimed is not None and not done.rowcount:
            raise ClaimTaken("the claim's key is taken")
        return
    if claimed is not None and not (await conn.execute(_claim_statement(*claimed), params)).first():
        raise ClaimTaken("the claim's key is taken")
    for t, one in enumerate(shape):
        await driver_sql.run(conn, _prepared_insert(conn.dialect, (one,), first=t), params)


_Shape = tuple[tuple[Table, tuple[str, ...], int], ...]


@functools.lru_cache(maxsize=256)
def _prepared_insert(
    dialect: Dialect,
    shape: _Shape,
    first: int = 0,
    *,
    gated: bool = False,
    claim: tuple[Table, tuple[str, ...], Callable[[Any], Any]] | None = None,
) -> driver_sql.Prepared:
    """`_insert_statement` compiled once for the driver (db/driver_sql.py)."""
    return driver_sql.prepare(_insert_statement(shape, first, gated=gated, claim=claim), dialect)


def _insert_statement(
    shape: _Shape,
    first: int = 0,
    *,
    gated: bool = False,
    claim: tuple[Table, tuple[str, ...], Callable[[Any], Any]] | None = None,
) -> Insert:
    """One INSERT per table of `shape` (rows of named columns), chained as CTEs, built once.

    Bind parameters are named `p<table>_<row>_<column>`, so the statement (compiled once, by
    `_prepared_insert`) is reused for every call of the same shape. `gated`: every
    INSERT selects its rows from a CTE that locks the resource `gate_id` if its version is
    still `gate_version`, so nothing is written before that lock, and nothing at all without it.
    `claim` (PostgreSQL): its row (`c_<column>`) is inserted first (from the gate, if gated),
    under its conflict rule, and every other INSERT selects from what that returned.
    """

    def binds(t: int, r: int, table: Table, keys: tuple[str, ...]) -> dict[str, Any]:
        return {key: bindparam(f"p{t}_{r}_{key}", type_=table.c[key].type) for key in keys}

    source_of_rows: Any = None
    if gated:
        source_of_rows = (
            select(Resource.id)
            .where(
                Resource.id == bindparam("gate_id"),
                _resource_version == bindparam("gate_version"),
            )
            .with_for_update(key_share=True)
            .cte("gate")
        )
    if claim is not None:
        claim_table, claim_keys, rule = claim
        claimed = select(
            *(bindparam(f"c_{k}", type_=claim_table.c[k].type).label(k) for k in claim_keys)
        )
        if source_of_rows is not None:
            claimed = claimed.select_from(source_of_rows)
        insert_claim = postgresql.insert(claim_table).from_select(list(claim_keys), claimed)
        source_of_rows = rule(insert_claim).cte("claim")
    batches: list[Insert] = []
    for t, (table, keys, count) in enumerate(shape, start=first):
        if source_of_rows is not None:
            selects = [
                select(*(b.label(k) for k, b in binds(t, r, table, keys).items())).select_from(
                    source_of_rows
                )
                for r in range(count)
            ]
            source = selects[0] if count == 1 else union_all(*selects)
            batches.append(insert(table).from_select(list(keys), source))
        elif count > 1:
            batches.append(insert(table).values([binds(t, r, table, keys) for r in range(count)]))
        else:
            batches.append(insert(table).values(binds(t, 0, table, keys)))
    *ctes, last = batches
    return last.add_cte(*(c.cte(f"w{i}") for i, c in enumerate(ctes))) if ctes else last


@functools.lru_cache(maxsize=8)
def _claim_statement(table: Table, keys: tuple[str, ...], rule: Callable[[Any], Any]) -> Any:
    """A claim's row on its own (SQLite: one INSERT per table), under its rule, returning it."""
    values = {key: bindparam(f"c_{key}", type_=table.c[key].type) for key in keys}
    return rule(sqlite.insert(table).values(values))
