"""What the fan-out (services/fanout.py) reads and writes: the events and targets as rows, the
statements that read them (SQLAlchemy, and prepared as driver SQL for PostgreSQL's driver and
SQLite's one call), PostgreSQL's take of the queued events (`TAKE_IN_TURN`) and its one write
(`FAN_OUT_IN_ONE`)."""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Uuid, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect

from slotgraph.db import driver_sql
from slotgraph.db.models import Event, UndispatchedEvent, WebhookEndpoint
from slotgraph.services import sqlite_deliveries

# pg_advisory_xact_lock's key for "a fan-out is writing deliveries" (any fixed number: no other
# advisory lock in slotgraph uses it).
FANOUT_KEY = 7401731525


class EventRow(NamedTuple):
    """An event as the fan-out reads it (services/outbox.py `OutboxEvent`)."""

    seq: int
    id: uuid.UUID
    app_id: uuid.UUID
    type: str
    booking_id: uuid.UUID | None
    payload: str
    created_at: datetime
    request_id: str | None


class TargetRow(NamedTuple):
    """A target as the fan-out reads it (services/outbox.py `Target`); `events` as the engine
    decodes JSONB (db/engine.py), on the driver too."""

    id: uuid.UUID
    app_id: uuid.UUID
    events: list[str] | None
    created_at: datetime
    format: str
    calendar_id: uuid.UUID | None
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None


# SQLite: the queued events, oldest first (the queue is events_undispatched, ADR 0017), but not
# one marked dispatched (`TAKE_IN_TURN` says why; sqlite_deliveries.py takes those off first)
UNDISPATCHED = (
    select(*(getattr(Event, name) for name in EventRow._fields))
    .join(UndispatchedEvent, UndispatchedEvent.seq == Event.seq)
    .where(Event.dispatched_at.is_(None))
    .order_by(UndispatchedEvent.seq)
    .limit(bindparam("limit"))
)

TARGETS = select(*(getattr(WebhookEndpoint, name) for name in TargetRow._fields)).where(
    WebhookEndpoint.enabled.is_(True), WebhookEndpoint.deleted_at.is_(None)
)

# PostgreSQL: up to $1 queued events taken off the queue (deleted: the fan-out's own
# transaction writes their deliveries, or puts them back by rolling back), oldest first, as
# EventRow. The fan-outs' turn (`FANOUT_KEY`) is taken first: a one-time filter, evaluated
# before the scan. The next statements' snapshots see the previous fan-out's deliveries; a
# queued row it took meanwhile is skipped (FOR UPDATE re-reads a row changed since: deleted, it
# is gone). An event marked dispatched is taken off the queue but not fanned out: a worker of a
# version before migration 0019, still running after it, fanned it out and marked it (its
# deliveries would collide with theirs, and fail every fan-out that took it). The queued rows
# and then the events are looked up by their keys as an array: index
# scans whatever a generic plan guessed of the queue's size (`seq IN (...)` hashed the whole
# queue, a scan of the backlog each fan-out).
TAKE_IN_TURN = """
WITH taken AS (
    DELETE FROM events_undispatched WHERE seq = ANY(ARRAY(
        SELECT seq FROM events_undispatched
        WHERE (SELECT pg_advisory_xact_lock({key})) IS NOT NULL
        ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED
    ))
    RETURNING seq
)
SELECT {columns} FROM events
WHERE seq = ANY(ARRAY(SELECT seq FROM taken)) AND dispatched_at IS NULL ORDER BY seq
""".format(key=FANOUT_KEY, columns=", ".join(EventRow._fields))

TARGETS_OF_APPS = TARGETS.where(WebhookEndpoint.app_id.in_(bindparam("apps", expanding=True)))
# PostgreSQL on the driver: the apps as one array
TARGETS_OF_ANY_APP = TARGETS.where(
    WebhookEndpoint.app_id == any_(bindparam("apps", type_=ARRAY(Uuid())))
)


@functools.cache
def sqlite_reads(dialect: Dialect) -> sqlite_deliveries.Reads:
    """SQLite: the events' read (given the limit) and one app's targets' (given the app's id as
    stored, straight from the events' rows)."""
    events = driver_sql.prepare(UNDISPATCHED, dialect)
    targets = driver_sql.prepare(TARGETS.where(WebhookEndpoint.app_id == bindparam("app")), dialect)
    assert events.columns == EventRow._fields
    assert targets.columns == TargetRow._fields
    assert [name for name, _, _ in targets.params] == ["app"]
    return sqlite_deliveries.Reads(events, targets, EventRow._make, TargetRow._make)


@functools.cache
def on_driver(dialect: Dialect) -> driver_sql.Prepared:
    """PostgreSQL: the targets' read (given the apps, an array), as driver SQL."""
    targets = driver_sql.prepare(TARGETS_OF_ANY_APP, dialect)
    assert [name for name, _, _ in targets.params] == ["apps"]
    return targets


# The deliveries as arrays: their ids as one two-dimensional array, a row each
# (delivery_statements.py `rows_of`: $1, the delivery, app, target, event and booking), the
# events' seqs ($2) and whether each may be born leased ($3); `now` ($4), the lease's end
# ($5) and worker ($6). A delivery that may be born
# leased is, unless a pending delivery of its booking to its target is queued already
# (committed before this statement: fan-outs take turns).
# Returns the ids born leased.
FAN_OUT_IN_ONE = """
WITH o AS (
    SELECT * FROM unnest(
        ($1::uuid[])[1:1], ($1::uuid[])[2:2], ($1::uuid[])[3:3], ($1::uuid[])[4:4],
        $2::bigint[], ($1::uuid[])[5:5], $3::bool[]
    ) AS o(id, app_id, endpoint_id, event_id, event_seq, booking_id, may_lease)
),
inserted AS (
    INSERT INTO deliveries (id, app_id, endpoint_id, event_id, event_seq, booking_id, status,
        attempts, next_attempt_at, locked_until, locked_by, created_at, updated_at)
    SELECT o.id, o.app_id, o.endpoint_id, o.event_id, o.event_seq, o.booking_id, 'pending',
        CASE WHEN b.born THEN 1 ELSE 0 END, $4,
        CASE WHEN b.born THEN $5::timestamptz END, CASE WHEN b.born THEN $6::varchar END,
        $4, $4
    FROM o CROSS JOIN LATERAL (
        SELECT o.may_lease AND (o.booking_id IS NULL OR NOT EXISTS (
            SELECT FROM deliveries AS d
            WHERE d.status = 'pending' AND d.endpoint_id = o.endpoint_id
              AND d.booking_id = o.booking_id
        )) AS born
    ) AS b
    RETURNING id, locked_by
)
SELECT id FROM inserted WHERE locked_by IS NOT NULL
"""
