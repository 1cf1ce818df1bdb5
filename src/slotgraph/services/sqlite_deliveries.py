"""SQLite: the fan-out's write and the record's, each in one call on aiosqlite's thread.

Through SQLAlchemy a statement is three or four hops between the event loop and aiosqlite's
thread, and every row's values go through the execution context: about 90 us of CPU a delivery
for each of the two steps (docs/benchmarks.md, eighth pass). Here a step's statements run in
one call (db/driver_sql.py `call_sqlite`) inside the caller's transaction, which holds the
process's one connection (ADR 0008): plain tuples, many rows per statement (`executemany`),
converted by the columns' own bind processors (taken from statements SQLAlchemy compiles once),
a batch's constants (its time, its lease) once a batch and a target's or an event's ids once a
fan-out. The rules are the same as on PostgreSQL (services/fanout.py, services/deliveries.py
`finish`): what may be born leased, what a success settles, what is logged.
"""

from __future__ import annotations

import functools
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, insert
from sqlalchemy.engine import Dialect

from slotgraph.db import driver_sql
from slotgraph.db.models import Delivery, DeliveryAttempt, new_id
from slotgraph.db.models.base import table_of
from slotgraph.services import delivery_statements

_DELIVERY = (
    *("id", "app_id", "endpoint_id", "event_id", "event_seq", "booking_id", "status"),
    *("attempts", "next_attempt_at", "locked_until", "locked_by", "created_at", "updated_at"),
)
_ATTEMPT = (
    *("id", "delivery_id", "endpoint_id", "event_id", "attempt", "at", "status_code", "error"),
    *("duration_ms", "response_body", "next_retry_at", "worker_id"),
)

# The (target, booking) pairs with a pending delivery already, given the targets and the
# bookings as two JSON arrays: one text for any number of either (one `?` each would meet
# SQLite's limit on variables, and make a statement per count in the statement cache), still
# looked up in ix_deliveries_order.
_QUEUED = (
    "SELECT endpoint_id, booking_id FROM deliveries WHERE status = 'pending'"
    " AND endpoint_id IN (SELECT value FROM json_each(?))"
    " AND booking_id IN (SELECT value FROM json_each(?))"
    " GROUP BY endpoint_id, booking_id"
)
# The events fanned out, off their queue (ADR 0017)
_TAKEN = "DELETE FROM events_undispatched WHERE seq = ?"
# ... and, before the read, the first `?` queued that are marked dispatched already: fanned out by
# a worker of a version before migration 0019 (services/fanout_statements.py `TAKE_IN_TURN`)
_MARKED = (
    "DELETE FROM events_undispatched WHERE seq IN (SELECT e.seq FROM events AS e"
    " WHERE e.seq IN (SELECT seq FROM events_undispatched ORDER BY seq LIMIT ?)"
    " AND e.dispatched_at IS NOT NULL)"
)

# A success, where the claim is still ours (looked up by its key: the record's cost does not grow
# with the deliveries kept, tests/api/test_delivery_record_cost.py)
_SUCCEEDED = (
    "UPDATE deliveries SET status = 'succeeded', next_attempt_at = NULL, locked_until = NULL,"
    " locked_by = NULL, updated_at = ? WHERE id = ? AND attempts = ? AND locked_by = ?"
)
# ... and its target's failing streak ended
_STREAK_ENDED = (
    "UPDATE webhook_endpoints SET failing_since = NULL, last_success_at = ?"
    " WHERE id = ? AND failing_since IS NOT NULL"
)


@dataclass(frozen=True)
class Reads:
    """The fan-out's reads (services/fanout.py): the undispatched events (given `limit`), one
    app's targets (given `app`), and the rows they are read as."""

    events: driver_sql.Prepared
    targets: driver_sql.Prepared
    event_row: Callable[[list[Any]], Any]
    target_row: Callable[[list[Any]], Any]


Pair = tuple[Any, Any]  # (target, event), as read
Queued = set[tuple[uuid.UUID, uuid.UUID]]  # (target, booking) with a pending delivery already
BornOf = Callable[[list[Pair], Queued], set[int]]  # the order rule: the positions born leased


async def dispatch(
    conn: Any,
    reads: Reads,
    limit: int,
    pairs_of: Callable[[list[Any], list[Any]], list[Pair] | None],
    born_of: BornOf | None,
    lease: tuple[datetime, str] | None,
    now: datetime,
) -> tuple[list[Any], list[Pair], list[uuid.UUID], set[int]] | None:
    """The whole fan-out in one call, from BEGIN IMMEDIATE (as the engine begins every
    transaction, db/engine.py) to COMMIT, on `conn`, a connection not in a transaction (checked
    out of the pool: the process's one connection, ADR 0008): up to `limit` undispatched
    events and their apps' targets read, `pairs_of` them (target, event) each given a new id,
    written as deliveries (`_write`: `born_of` and `lease` as there), the events taken off
    their queue. Returns the events, the pairs, their ids and the positions born leased; None,
    rolled back, where `pairs_of` says None (its channels' filters must read the database:
    the caller's way through its session instead).

    `pairs_of` and `born_of` run on aiosqlite's thread: they neither await nor touch the event
    loop (the rules are pure; `new_id` takes its own lock)."""
    s = _statements(conn.dialect)

    def run(db: sqlite3.Connection) -> tuple[Any, ...] | None:
        db.execute("BEGIN IMMEDIATE")
        try:
            done = fan_out_on(db)
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("ROLLBACK" if done is None else "COMMIT")
        return done

    def fan_out_on(db: sqlite3.Connection) -> tuple[Any, ...] | None:
        events, targets = _read(db, reads, limit)
        if not events:
            return [], [], [], set()
        event_rows = [reads.event_row(reads.events.converted(r)) for r in events]
        target_rows = [reads.target_row(reads.targets.converted(r)) for r in targets]
        pairs = pairs_of(event_rows, target_rows)
        if pairs is None:
            return None
        ids = [new_id() for _ in pairs]
        seqs = [e.seq for e in event_rows]
        born = _write(db, s, pairs, ids, seqs, born_of, lease, now)
        return event_rows, pairs, ids, born

    return await driver_sql.call_sqlite(conn, run)


async def undispatched(conn: Any, reads: Reads, limit: int) -> tuple[list[Any], list[Any]]:
    """Up to `limit` undispatched events, oldest first, and the live targets of their apps,
    in one call, converted as SQLAlchemy converts them (ids, times, JSON)."""
    events, targets = await driver_sql.call_sqlite(conn, _read, reads, limit)
    return (
        [reads.event_row(reads.events.converted(r)) for r in events],
        [reads.target_row(reads.targets.converted(r)) for r in targets],
    )


def _read(db: sqlite3.Connection, reads: Reads, limit: int) -> tuple[list[Any], list[Any]]:
    """On aiosqlite's thread: the events' rows and their apps' targets', as stored (the
    caller's transaction: the queued events marked dispatched are taken off first)."""
    app_at = reads.events.columns.index("app_id")
    db.execute(_MARKED, (limit,))
    events = db.execute(reads.events.sql, reads.events.arguments({"limit": limit})).fetchall()
    targets = []
    for app in dict.fromkeys(e[app_at] for e in events):  # as stored: no conversion
        targets += db.execute(reads.targets.sql, (app,)).fetchall()
    return events, targets


@dataclass(frozen=True)
class _Statements:
    insert_deliveries: str
    insert_attempts: str
    uuid: Callable[[uuid.UUID], str]  # a Uuid column's bind processor
    time: Callable[[datetime | None], Any]  # a UTCDateTime column's


@functools.cache
def _statements(dialect: Dialect) -> _Statements:
    deliveries = _prepared(table_of(Delivery), _DELIVERY, dialect)
    attempts = _prepared(table_of(DeliveryAttempt), _ATTEMPT, dialect)
    convert = {name: c for name, _, c in deliveries.params}
    return _Statements(deliveries.sql, attempts.sql, convert["id"], convert["next_attempt_at"])


def _prepared(table: Any, columns: tuple[str, ...], dialect: Dialect) -> driver_sql.Prepared:
    prepared = driver_sql.prepare(insert(table).values({c: bindparam(c) for c in columns}), dialect)
    assert tuple(name for name, _, _ in prepared.params) == columns
    assert set(columns) == set(table.c.keys()), "every column written"
    return prepared


async def fan_out(
    conn: Any,
    pairs: list[Pair],
    ids: list[uuid.UUID],
    seqs: list[int],
    born_of: BornOf | None,
    lease: tuple[datetime, str] | None,
    now: datetime,
) -> set[int]:
    """`_write` in one call, a step of the caller's transaction."""
    s = _statements(conn.dialect)
    return await driver_sql.call_sqlite(conn, _write, s, pairs, ids, seqs, born_of, lease, now)


def _write(
    db: sqlite3.Connection,
    s: _Statements,
    pairs: list[Pair],
    ids: list[uuid.UUID],
    seqs: list[int],
    born_of: BornOf | None,
    lease: tuple[datetime, str] | None,
    now: datetime,
) -> set[int]:
    """On aiosqlite's thread: write the deliveries of `pairs` (target, event) with the `ids`,
    and take the events `seqs` off their queue. `born_of` (with a lease) says which positions in
    `pairs` are born leased, given the (target, booking) pairs that have a pending delivery
    already (read here); those take attempt 1 and `lease` (its end, its worker). Returns them."""
    until, worker = (s.time(lease[0]), lease[1]) if lease is not None else (None, None)
    at = s.time(now)
    hexes: dict[uuid.UUID, str] = {}

    def hex_of(id_: uuid.UUID) -> str:
        if (h := hexes.get(id_)) is None:
            h = hexes[id_] = s.uuid(id_)
        return h

    rows = [
        (
            *(s.uuid(id_), hex_of(t.app_id), hex_of(t.id), hex_of(e.id), e.seq),
            None if e.booking_id is None else hex_of(e.booking_id),
        )
        for id_, (t, e) in zip(ids, pairs, strict=True)
    ]
    born: set[int] = set()
    if born_of is not None:
        queued: Queued = set()
        if bookings := {e.booking_id for _, e in pairs} - {None}:
            targets = [hex_of(t) for t in {t.id for t, _ in pairs}]
            queued = _queued(db, targets, [hex_of(b) for b in bookings])
        born = born_of(pairs, queued)
    db.executemany(
        s.insert_deliveries,
        [
            (*row, "pending", 1, at, until, worker, at, at)
            if i in born
            else (*row, "pending", 0, at, None, None, at, at)
            for i, row in enumerate(rows)
        ],
    )
    db.executemany(_TAKEN, [(seq,) for seq in seqs])
    return born


def _queued(db: sqlite3.Connection, targets: list[str], bookings: list[str]) -> Queued:
    found = db.execute(_QUEUED, (orjson.dumps(targets).decode(), orjson.dumps(bookings).decode()))
    return {(uuid.UUID(t), uuid.UUID(b)) for t, b in found}


@dataclass(frozen=True)
class _Claiming:
    """The claim's two statements (services/delivery_statements.py `take_due`, no target
    skipped, and `to_send`) as SQLite text: the first with its parameters' names in order (and
    the values it was built with, and their conversions), the second's `IN (...)` filled per
    count of ids (`_to_send`)."""

    take: str
    take_params: tuple[tuple[str, Any, Any], ...]  # (name, built value or None, conversion)
    to_send: driver_sql.Prepared  # its text has SQLAlchemy's mark for the ids' list


_IDS = "__[POSTCOMPILE_ids]"


@functools.cache
def _claiming(dialect: Dialect) -> _Claiming:
    compiled = delivery_statements.take_due(postgres=False).compile(dialect=dialect)
    given = {"now": None, "until": None, "worker": None, "limit": None}
    take = compiled.construct_expanded_state({**compiled.params, **given, "skip": []})
    assert take.positiontup is not None
    assert "POSTCOMPILE" not in take.statement
    params = tuple(
        (
            name,
            None if name in given else compiled.params[name],
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect),
        )
        for name in take.positiontup
    )
    assert {name for name, built, _ in params if built is None} == set(given)
    to_send = driver_sql.prepare(delivery_statements.to_send(), dialect)
    assert [name for name, _, _ in to_send.params] == ["ids"]
    assert to_send.sql.count(_IDS) == 1
    return _Claiming(take.statement, params, to_send)


@functools.lru_cache(maxsize=64)  # bounded: a statement's text for each count of ids
def _to_send(statement: str, count: int) -> str:
    return statement.replace(_IDS, ", ".join("?" * count))


async def claim(conn: Any, given: dict[str, Any]) -> list[list[Any]]:
    """`take_due` (no target skipped) and `to_send` in one call, from BEGIN IMMEDIATE (as the
    engine begins every transaction, db/engine.py) to COMMIT, on `conn`, a connection not in a
    transaction (the process's one connection, ADR 0008): the rows of what to send where, in
    the order they are due, converted as SQLAlchemy converts them. The ids go from the first
    statement to the second as stored. Through the session a claim was two statements of three
    or four hops to aiosqlite's thread each, every row converted there, and the ids converted
    to UUIDs and back (docs/benchmarks.md, "twelfth pass: the worker's send side")."""
    c = _claiming(conn.dialect)
    take = tuple(
        value if convert is None else convert(value)
        for name, built, convert in c.take_params
        for value in (given[name] if built is None else built,)
    )

    def run(db: sqlite3.Connection) -> list[Any]:
        db.execute("BEGIN IMMEDIATE")
        try:
            ids = [row[0] for row in db.execute(c.take, take)]
            rows = db.execute(_to_send(c.to_send.sql, len(ids)), ids).fetchall() if ids else []
        except BaseException:
            if db.in_transaction:  # (an error may have ended it: its own is the one to raise)
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return rows

    return [c.to_send.converted(r) for r in await driver_sql.call_sqlite(conn, run)]


async def record(
    conn: Any,
    succeeded: Sequence[tuple[uuid.UUID, uuid.UUID, int]],
    attempts: Sequence[tuple[Any, ...]],
    now: datetime,
    worker_id: str,
    transaction: bool,
) -> list[int]:
    """Settle the `succeeded` (delivery, target, attempt) still leased by `worker_id`, end
    their targets' failing streaks, and log the `attempts` (DeliveryAttempt's columns in
    order, ids and times not yet converted), in one call. Returns the positions in
    `succeeded` that were settled. `transaction`: the call is the whole transaction, from
    BEGIN IMMEDIATE (as the engine begins every one, db/engine.py) to COMMIT, on a connection
    not in one (checked out of the pool: the process's one connection, ADR 0008); otherwise a
    step of the caller's."""
    s = _statements(conn.dialect)
    at = s.time(now)
    u, t = s.uuid, s.time
    settling = [(at, u(d), attempt, worker_id) for d, _, attempt in succeeded]
    target_hex = [u(target) for _, target, _ in succeeded]
    logged = [
        (u(a[0]), u(a[1]), u(a[2]), u(a[3]), a[4], t(a[5]), *a[6:10], t(a[10]), a[11])
        for a in attempts
    ]

    def write_in_transaction(db: sqlite3.Connection) -> list[int]:
        db.execute("BEGIN IMMEDIATE")
        try:
            settled = write(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return settled

    def write(db: sqlite3.Connection) -> list[int]:
        settled = []
        cursor = db.cursor()
        try:
            for i, values in enumerate(settling):
                if cursor.execute(_SUCCEEDED, values).rowcount == 1:
                    settled.append(i)
        finally:
            cursor.close()
        targets = {target_hex[i] for i in settled}
        db.executemany(_STREAK_ENDED, [(at, target) for target in sorted(targets)])
        db.executemany(s.insert_attempts, logged)
        return settled

    return await driver_sql.call_sqlite(conn, write_in_transaction if transaction else write)
