"""The fan-out: new events become deliveries, one per target that wants them (ADR 0003).

Deliveries are **born leased** where they can be: a fan-out run by a worker with room for
more sends (`Lease`) inserts the deliveries it can send at once already leased to that worker
(attempt 1 counted, `locked_until` the lease's end) and hands them straight to its senders,
so a first attempt costs no claim (its UPDATE and its round trip). A worker that dies before
recording them has them taken over when the lease runs out, as any claim; a graceful stop
gives them back (services/deliveries.py `release`).

Only what the order rule allows is born leased (the claim's rule, services/delivery_statements.py
`take_due`): per target and booking, the first delivery of this fan-out, and only if no pending
delivery of that booking to that target is queued already. The rest are queued pending, for any
worker's claim. On PostgreSQL fan-outs take turns (a transaction-level advisory lock), so two
workers' fan-outs never both find "nothing queued" for one booking and lease two of its events.

Events and targets are read as rows, not ORM objects; the channels' filters (`wanted`) read the
same attributes from them. The rows and the statements are services/fanout_statements.py's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from slotgraph.db.engine import driver_transaction
from slotgraph.db.models import new_id
from slotgraph.domain.webhooks import wants
from slotgraph.notifications import targets as email_targets
from slotgraph.services import calendar_pushes, sqlite_deliveries
from slotgraph.services.deliveries import Claim, claims_of
from slotgraph.services.delivery_statements import rows_of
from slotgraph.services.fanout_statements import (
    FAN_OUT_IN_ONE,
    TAKE_IN_TURN,
    TARGETS_OF_APPS,
    EventRow,
    TargetRow,
    on_driver,
    sqlite_reads,
)


@dataclass(frozen=True)
class Lease:
    """Born leased: at most `room` deliveries, to `worker_id` until `until`, none to the
    targets `skip` (slow ones: worker_slots.py; theirs are queued for a claim)."""

    worker_id: str
    until: datetime
    room: int
    skip: frozenset[uuid.UUID] = frozenset()


@dataclass
class Dispatched:
    events: int = 0  # events fanned out
    claims: list[Claim] = field(default_factory=list)  # born leased: send them now
    queued: int = 0  # deliveries queued pending, for a claim


async def dispatch(
    session: AsyncSession, *, now: datetime, limit: int = 500, lease: Lease | None = None
) -> Dispatched:
    """Fan up to `limit` new events out into deliveries, one per target that wants them; with
    `lease`, the ones the order rule allows (up to its room) born leased (the module's doc).

    The events come off their queue (`events_undispatched`, ADR 0017) in the fan-out's
    transaction: a fan-out rolled back leaves them queued. PostgreSQL: the fan-outs' turn is
    taken in the statement that takes them (services/fanout_statements.py `TAKE_IN_TURN`), and
    the deliveries and the check that nothing of a booking is queued already are one statement
    (`FAN_OUT_IN_ONE`): four round trips with BEGIN and COMMIT, run on the driver (no
    SQLAlchemy execution around them) when the session is on an engine. SQLite: all of it,
    BEGIN IMMEDIATE to COMMIT, in one call on aiosqlite's thread (`_dispatch_on_sqlite`),
    unless the channels' filters must read (a calendar target, or an email target and a
    booking that asks for emails): then in the session's transaction, the reads in one call and
    the order rule's check, the deliveries and the events taken off the queue in another
    (services/sqlite_deliveries.py; one writer at a time anyway)."""
    bind = session.bind
    if isinstance(bind, AsyncEngine):
        if bind.dialect.name == "postgresql":
            return await _dispatch_on_driver(session, bind, now, limit, lease)
        if (done := await _dispatch_on_sqlite(session, bind, now, limit, lease)) is not None:
            return done
    async with session.begin():
        conn = await session.connection()
        postgres = conn.dialect.name == "postgresql"
        events: Sequence[Any]
        targets: Sequence[Any]
        if postgres:
            taken = await conn.exec_driver_sql(TAKE_IN_TURN, (limit,))
            events = [EventRow._make(r) for r in taken]
            apps = list({e.app_id for e in events})
            targets = (await conn.execute(TARGETS_OF_APPS, {"apps": apps})).all() if apps else []
        else:
            events, targets = await sqlite_deliveries.undispatched(
                conn, sqlite_reads(conn.dialect), limit
            )
        if not events:
            return Dispatched()
        pairs = await _pairs(session, events, targets)
        ids = [new_id() for _ in pairs]
        if postgres:
            born = _born_leased(pairs, lease, None) if lease is not None else set()
            args = _write_args(pairs, ids, born, lease, now)
            leased = set((await conn.exec_driver_sql(FAN_OUT_IN_ONE, args)).scalars())
        else:
            seqs = [e.seq for e in events]
            born = await sqlite_deliveries.fan_out(
                conn, pairs, ids, seqs, _born_of(lease), _lease_of(lease), now
            )
            leased = {ids[i] for i in born}
    return await _handed(session, events, pairs, ids, leased, now)


async def _dispatch_on_driver(
    session: AsyncSession, engine: AsyncEngine, now: datetime, limit: int, lease: Lease | None
) -> Dispatched:
    """PostgreSQL: `dispatch`'s statements on one pooled connection's driver, in a transaction
    of its own (db/engine.py `driver_transaction`). The channels' filters, which read only
    where a calendar or an email target is among the targets, read committed rows through
    `session` (another connection; READ COMMITTED sees the same rows, and fan-outs take turns)."""
    targeting = on_driver(engine.dialect)
    async with driver_transaction(engine) as driver:
        found = await driver.fetch(TAKE_IN_TURN, limit)
        if not found:
            return Dispatched()
        events = [EventRow._make(r) for r in found]
        apps = list({e.app_id for e in events})
        targets = [TargetRow._make(r) for r in await driver.fetch(targeting.sql, apps)]
        async with session.begin():
            pairs = await _pairs(session, events, targets)
        born = _born_leased(pairs, lease, None) if lease is not None else set()
        ids = [new_id() for _ in pairs]
        args = _write_args(pairs, ids, born, lease, now)
        leased = {r[0] for r in await driver.fetch(FAN_OUT_IN_ONE, *args)}
    return await _handed(session, events, pairs, ids, leased, now)


async def _dispatch_on_sqlite(
    session: AsyncSession, engine: AsyncEngine, now: datetime, limit: int, lease: Lease | None
) -> Dispatched | None:
    """SQLite: `dispatch` in one call on aiosqlite's thread, its transaction from BEGIN
    IMMEDIATE to COMMIT included (services/sqlite_deliveries.py `dispatch`), on the pool's one
    connection (ADR 0008). None, having written nothing, where a calendar or an email target is
    among the targets: their filters read through the session (`dispatch` then fans out the
    session's way)."""
    async with engine.connect() as conn:
        found = await sqlite_deliveries.dispatch(
            conn,
            sqlite_reads(engine.dialect),
            limit,
            _pairs_without_reads,
            _born_of(lease),
            _lease_of(lease),
            now,
        )
    if found is None:
        return None
    events, pairs, ids, born = found
    if not events:
        return Dispatched()
    return await _handed(session, events, pairs, ids, {ids[i] for i in born}, now)


def _born_of(lease: Lease | None) -> sqlite_deliveries.BornOf | None:
    """SQLite: the order rule given the pairs and what is queued already (`_born_leased`)."""
    if lease is None:
        return None
    return lambda pairs, queued: _born_leased(pairs, lease, queued)


def _lease_of(lease: Lease | None) -> tuple[datetime, str] | None:
    return None if lease is None else (lease.until, lease.worker_id)


async def _pairs(
    session: AsyncSession, events: Sequence[Any], targets: Sequence[Any]
) -> list[tuple[Any, Any]]:
    """(target, event) for every target that wants an event, in event order: its filter and
    subscription time (domain/webhooks.py `wants`), and the calendar and email channels' own
    filters (which read only where such a target is among `targets`)."""
    calendar_wants = await calendar_pushes.wanted(session, targets, events)
    email_wants = await email_targets.wanted(session, targets, events)
    return _pairs_wanted(events, targets, calendar_wants, email_wants)


def _pairs_without_reads(
    events: Sequence[Any], targets: Sequence[Any]
) -> list[tuple[Any, Any]] | None:
    """`_pairs` where the channels' filters need not read the database; otherwise None."""
    calendar_wants = calendar_pushes.wanted_without_reads(targets)
    email_wants = email_targets.wanted_without_reads(targets, events)
    if calendar_wants is None or email_wants is None:
        return None
    return _pairs_wanted(events, targets, calendar_wants, email_wants)


def _pairs_wanted(
    events: Sequence[Any],
    targets: Sequence[Any],
    calendar_wants: Callable[[Any, Any], bool],
    email_wants: Callable[[Any, Any], bool],
) -> list[tuple[Any, Any]]:
    of_app: dict[uuid.UUID, list[Any]] = {}
    for t in targets:
        of_app.setdefault(t.app_id, []).append(t)
    return [
        (target, event)
        for event in events
        for target in of_app.get(event.app_id, ())
        if wants(
            filters=target.events,
            subscribed_at=target.created_at,
            event_type=event.type,
            event_at=event.created_at,
        )
        and calendar_wants(target, event)
        and email_wants(target, event)
    ]


async def _handed(
    session: AsyncSession,
    events: Sequence[Any],
    pairs: Sequence[tuple[Any, Any]],
    ids: list[uuid.UUID],
    leased: set[uuid.UUID],
    now: datetime,
) -> Dispatched:
    """What the fan-out hands to the senders, once committed (a fan-out rolled back sends
    nothing): the claims of the deliveries born `leased`."""
    rows = [
        (
            *(id_, 1, event.id, target.id, event.payload, event.request_id),
            *(target.url, target.secret, target.previous_secret),
            *(target.previous_secret_expires_at, target.format, target.calendar_id),
        )
        for id_, (target, event) in zip(ids, pairs, strict=True)
        if id_ in leased
    ]
    claims = await claims_of(session, rows, now) if rows else []
    return Dispatched(len(events), claims, len(pairs) - len(claims))


def _born_leased(
    pairs: Sequence[tuple[Any, Any]], lease: Lease, queued: set[tuple[Any, Any]] | None
) -> set[int]:
    """The positions in `pairs` (target, event), in event order, that may be born leased: the
    first of each (target, booking), up to the lease's room, unless one of that booking is
    `queued` already (PostgreSQL checks that in its write instead: None)."""
    seen = set(queued or ())
    born: set[int] = set()
    for i, (target, event) in enumerate(pairs):
        if len(born) == lease.room:
            break
        if target.id in lease.skip:
            continue  # a slow target: queued for a claim (which skips it while it is slow)
        if event.booking_id is not None:
            key = (target.id, event.booking_id)
            if key in seen:
                continue  # an earlier one of this booking goes first: queued behind it
            seen.add(key)
        born.add(i)
    return born


def _write_args(
    pairs: Sequence[tuple[Any, Any]],
    ids: list[uuid.UUID],
    born: set[int],
    lease: Lease | None,
    now: datetime,
) -> tuple[Any, ...]:
    """PostgreSQL: `FAN_OUT_IN_ONE`'s arguments."""
    return (
        rows_of(
            ids,
            [t.app_id for t, _ in pairs],
            [t.id for t, _ in pairs],
            [e.id for _, e in pairs],
            [e.booking_id for _, e in pairs],
        ),
        [e.seq for _, e in pairs],
        [i in born for i in range(len(pairs))],
        now,
        lease.until if lease else None,
        lease.worker_id if lease else None,
    )
