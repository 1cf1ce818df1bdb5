"""The delivery pipeline's hot statements, built once with parameters.

The worker claims and records many times a second. Building a statement with aliases costs
more CPU than running it (SQLAlchemy adapts every column of an alias on each build: about two
thirds of a claim's CPU when it was built per call), so each is built here once and run on the
session's connection (Core, not the ORM's execution path) with its values as parameters.

On PostgreSQL a claim and a record are one statement each (`claim_in_one`, `SETTLE_IN_ONE`),
run as driver SQL on asyncpg (db/driver_sql.py): one round trip and no SQLAlchemy execution
per batch. SQLite, which has no UPDATE in a WITH and no arrays, claims with the statements
above; its record is services/sqlite_deliveries.py.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    String,
    Update,
    Uuid,
    all_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from slotgraph.db import driver_sql
from slotgraph.db.models import Delivery, Event, WebhookEndpoint
from slotgraph.db.models.base import table_of
from slotgraph.db.types import UTCDateTime

# Written into the SQL, not sent as a parameter: a cached generic plan (asyncpg prepares each
# statement once per connection) can then use the indexes that hold only pending rows. With a
# parameter, a plan made while the table was nearly empty scanned every delivery of the target
# for each due one (about 0.9 s a claim with 2,000 due).
PENDING: ColumnElement[str] = literal_column("'pending'")


@functools.cache
def take_due(*, postgres: bool, skipping: bool = False) -> Update:
    """Lease up to `limit` due deliveries to `worker` until `until`, counting the attempt, in one
    UPDATE ... RETURNING: due at `now`, not leased (or the lease ran out), the target enabled,
    and no earlier pending delivery of the same booking to the same target (the order per
    booking: it is the first pending one), and not to one of the targets `skip` (the worker's
    slow ones, worker_slots.py: an array on PostgreSQL, a list expanded on SQLite). PostgreSQL
    locks the picked rows with SKIP LOCKED, so workers never pick the same row; SQLite has one
    writer at a time.

    `skipping` (`skip` not empty): the due rows are picked per target (`_pick_per_target`), so
    the skipped targets' backlogs are never read."""
    now = bindparam("now", type_=UTCDateTime)
    pick = _pick_per_target(now, postgres=postgres) if skipping else _pick(now, postgres=postgres)
    return (
        update(table_of(Delivery))
        .where(Delivery.id.in_(pick))
        .values(
            attempts=Delivery.attempts + 1,
            locked_until=bindparam("until", type_=UTCDateTime),
            locked_by=bindparam("worker", type_=String),
            updated_at=now,
        )
        .returning(
            Delivery.id,
            Delivery.attempts,
            Delivery.event_id,
            Delivery.endpoint_id,
            Delivery.next_attempt_at,
            Delivery.event_seq,
        )
    )


def _due(due: Any, now: ColumnElement[Any]) -> tuple[ColumnElement[bool], ...]:
    """What makes the delivery `due` (an alias of Delivery) due at `now`: pending, its time
    come, not leased (or the lease ran out), and the first pending one of its booking to its
    target (the order per booking)."""
    earlier = aliased(Delivery)
    # The oldest pending delivery of the booking to the target, as a subquery per due row: it
    # is always run on ix_deliveries_order, whatever the table held when the plan was made (as
    # NOT EXISTS, a generic plan made on a nearly empty table joined every due row with every
    # pending one).
    first_pending = (
        select(func.min(earlier.event_seq))
        .where(
            earlier.endpoint_id == due.endpoint_id,
            earlier.booking_id == due.booking_id,
            earlier.status == PENDING,
        )
        .scalar_subquery()
    )
    return (
        due.status == PENDING,
        due.next_attempt_at <= now,
        or_(due.locked_until.is_(None), due.locked_until < now),
        or_(due.booking_id.is_(None), due.event_seq == first_pending),
    )


# LIMIT 1 written in (a parameter would leave a generic plan guessing the limit)
_ONE: ColumnElement[int] = literal_column("1")

_TARGET_LIVE = (WebhookEndpoint.enabled.is_(True), WebhookEndpoint.deleted_at.is_(None))


def _pick(now: ColumnElement[Any], *, postgres: bool) -> Select[*tuple[Any, ...]]:
    """The due rows in the order they are due, on ix_deliveries_due: the soonest first."""
    due = aliased(Delivery)
    return (
        select(due.id)
        .join(WebhookEndpoint, WebhookEndpoint.id == due.endpoint_id)
        .where(
            *_due(due, now),
            *_TARGET_LIVE,
            due.endpoint_id != all_(bindparam("skip", type_=ARRAY(Uuid())))
            if postgres
            else due.endpoint_id.not_in(bindparam("skip", expanding=True)),
        )
        .order_by(due.next_attempt_at, due.event_seq)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True, of=due)
    )


def _pick_per_target(now: ColumnElement[Any], *, postgres: bool) -> Select[*tuple[Any, ...]]:
    """While targets are skipped: the targets with pending deliveries, one step of
    ix_deliveries_order each (a loose scan: a skipped target's backlog is stepped over, not
    read), then each other target's due rows in the order they are due
    (ix_deliveries_due_per_target, up to `limit` each), the soonest `limit` of them. `_pick` on
    ix_deliveries_due would read every due row of a skipped target that is due before the rows
    it takes: 15.8 ms against 0.49 ms a claim with 20,000 of them (PostgreSQL). SQLite, which
    has no LATERAL, takes each target's rows as a correlated IN (...)."""
    step = aliased(Delivery)
    first = (
        select(step.endpoint_id)
        .where(step.status == PENDING)
        .order_by(step.endpoint_id)
        .limit(_ONE)
        .subquery()
    )
    targets = select(first.c.endpoint_id).cte("targets", recursive=True)
    after = (
        select(step.endpoint_id)
        .where(step.status == PENDING, step.endpoint_id > targets.c.endpoint_id)
        .order_by(step.endpoint_id)
        .limit(_ONE)
        .scalar_subquery()
    )
    targets = targets.union_all(
        select(after.label("endpoint_id")).where(targets.c.endpoint_id.is_not(None))
    )
    due = aliased(Delivery)
    of_target = (
        select(due.id, due.next_attempt_at, due.event_seq)
        .where(due.endpoint_id == targets.c.endpoint_id, *_due(due, now))
        .order_by(due.next_attempt_at, due.event_seq)
        .limit(bindparam("limit", type_=Integer))
    )
    others = (
        targets.c.endpoint_id != all_(bindparam("skip", type_=ARRAY(Uuid())))
        if postgres
        else targets.c.endpoint_id.not_in(bindparam("skip", expanding=True))
    )
    live = (
        select()
        .select_from(targets)
        .join(WebhookEndpoint, WebhookEndpoint.id == targets.c.endpoint_id)
        .where(*_TARGET_LIVE, others)
    )
    if postgres:
        taken = of_target.with_for_update(skip_locked=True).lateral("of_target")
        return (
            live.add_columns(taken.c.id)
            .join(taken, true())
            .order_by(taken.c.next_attempt_at, taken.c.event_seq)
            .limit(bindparam("limit", type_=Integer))
        )
    chosen = aliased(Delivery)
    return (
        live.add_columns(chosen.id)
        .join(chosen, chosen.id.in_(of_target.with_only_columns(due.id)))
        .order_by(chosen.next_attempt_at, chosen.event_seq)
        .limit(bindparam("limit", type_=Integer))
    )


@functools.cache
def to_send() -> Select[*tuple[Any, ...]]:
    """SQLite, after `take_due`: the deliveries `ids` with what to send where, in the order they
    are due (the columns of `claim_in_one`)."""
    e = WebhookEndpoint
    return (
        select(
            *(Delivery.id, Delivery.attempts, Delivery.event_id, Delivery.endpoint_id), *_TO_SEND
        )
        .join(Event, Event.id == Delivery.event_id)
        .join(e, e.id == Delivery.endpoint_id)
        .where(Delivery.id.in_(bindparam("ids", expanding=True)))
        .order_by(Delivery.next_attempt_at, Delivery.event_seq)
    )


# What a claim sends where: the event's payload and request id, the target's URL, secrets (as
# stored; domain/webhooks.py says which of them sign now), format and calendar.
_TO_SEND = (
    Event.payload,
    Event.request_id,
    WebhookEndpoint.url,
    WebhookEndpoint.secret,
    WebhookEndpoint.previous_secret,
    WebhookEndpoint.previous_secret_expires_at,
    WebhookEndpoint.format,
    WebhookEndpoint.calendar_id,
)


# -- PostgreSQL: a claim and a record in one statement each, run on the pooled connection's driver


@functools.cache
def claim_in_one(*, skipping: bool = False) -> Select[*tuple[Any, ...]]:
    """PostgreSQL: `take_due` and what to send where, in one statement (one round trip, its own
    transaction): the leased rows joined with their events' payloads and their targets, in the
    order they are due."""
    taken = take_due(postgres=True, skipping=skipping).cte("taken")
    e = WebhookEndpoint
    return (
        select(taken.c.id, taken.c.attempts, taken.c.event_id, taken.c.endpoint_id, *_TO_SEND)
        .join_from(taken, Event, Event.id == taken.c.event_id)
        .join(e, e.id == taken.c.endpoint_id)
        .order_by(taken.c.next_attempt_at, taken.c.event_seq)
    )


@functools.cache
def claim_prepared(dialect: Dialect, *, skipping: bool = False) -> driver_sql.Prepared:
    prepared = driver_sql.prepare(claim_in_one(skipping=skipping), dialect)
    given = {name for name, value, _ in prepared.params if value is None}
    assert given == {"now", "until", "worker", "limit", "skip"}, given
    return prepared


# Every outcome of a batch as arrays, one element per attempt: three of them two-dimensional,
# a row per field (`settle_arguments`): ids ($1: the delivery, the attempt's own, the target,
# the event), numbers ($2: the attempt, the answer's status code, its duration) and texts ($3:
# the error, the status decided, the answer's body); the retry times ($4), `now` ($5) and the
# worker ($6). The deliveries still leased by this worker at that attempt are settled (the
# status and retry time decided by the caller), every attempt is logged (with its retry time
# only where it was settled), and a success ends its target's failing streak. Returns the ids
# settled. One statement: its own transaction on the driver, or a step of the caller's.
SETTLE_IN_ONE = """
WITH outcome AS (
    SELECT * FROM unnest(
        ($1::uuid[])[1:1], ($2::int[])[1:1], ($1::uuid[])[2:2], ($1::uuid[])[3:3],
        ($1::uuid[])[4:4], ($3::text[])[2:2], $4::timestamptz[], ($2::int[])[2:2],
        ($3::text[])[1:1], ($2::int[])[3:3], ($3::text[])[3:3]
    ) AS o(delivery_id, attempt, attempt_id, endpoint_id, event_id, status, retry_at,
           status_code, error, duration_ms, response_body)
),
settled AS (
    UPDATE deliveries AS d
    SET status = o.status, next_attempt_at = o.retry_at, locked_until = NULL,
        locked_by = NULL, updated_at = $5
    FROM outcome AS o
    WHERE d.id = o.delivery_id AND d.attempts = o.attempt AND d.locked_by = $6
    RETURNING d.id, d.endpoint_id, d.status
),
logged AS (
    INSERT INTO delivery_attempts (id, delivery_id, endpoint_id, event_id, attempt, at,
        status_code, error, duration_ms, response_body, next_retry_at, worker_id)
    SELECT o.attempt_id, o.delivery_id, o.endpoint_id, o.event_id, o.attempt, $5,
        o.status_code, o.error, o.duration_ms, o.response_body,
        CASE WHEN s.id IS NULL THEN NULL ELSE o.retry_at END, $6
    FROM outcome AS o LEFT JOIN settled AS s ON s.id = o.delivery_id
),
streaks AS (
    UPDATE webhook_endpoints SET failing_since = NULL, last_success_at = $5
    WHERE id IN (SELECT endpoint_id FROM settled WHERE status = 'succeeded')
      AND failing_since IS NOT NULL
)
SELECT id FROM settled
"""


def rows_of(*columns: list[Any]) -> list[list[Any]]:
    """Columns of one type as one two-dimensional array argument, a row each (`SETTLE_IN_ONE`,
    services/fanout_statements.py `FAN_OUT_IN_ONE`; the statement takes each row as a column
    with `($n::type[])[k:k]`). asyncpg checks every element of an array argument against
    collections.abc's Iterable and Sized before it encodes it (a Python-level
    `ABCMeta.__instancecheck__` each, about 2,400 instructions an element: 5% of the worker's
    instructions per delivery with the record's 11 arrays and the fan-out's 7), but of a
    two-dimensional one only the elements of its first row: put the cheapest to check first
    (None or a number: one check; a string: two). docs/benchmarks.md, thirteenth pass."""
    return list(columns)
