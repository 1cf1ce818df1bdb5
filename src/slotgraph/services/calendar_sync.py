"""CalDAV pull, the worker side: claim a due connection, (fetch, outside any transaction),
apply the changes as blocks in one transaction, or record the failure and retry later.

Applying is idempotent: the blocks of each calendar object are diffed against what that object
keeps busy now, and the new sync token is stored in the same transaction. A worker killed
mid-sync loses its lease; the next one fetches from the last stored token again, and the diff
makes the second application a no-op for anything already applied.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.calendars import keys, remote
from slotgraph.calendars.pull import BadObject, Budget, Busy, busy_in
from slotgraph.db import queries
from slotgraph.db.models import (
    Booking,
    BookingHold,
    CalendarConnection,
    Resource,
    ResourceBlock,
)
from slotgraph.services import calendar_events
from slotgraph.services.calendar_connections import remove_pulled_blocks
from slotgraph.services.outbox import record_event
from slotgraph.services.resources import block_hold, bookings_under, remove_blocks

HORIZON_PAST = timedelta(days=1)
HORIZON_AHEAD = timedelta(days=366)
FULL_SYNC_EVERY = timedelta(hours=24)  # re-expands recurring events as the horizon moves
MAX_BLOCKS = 50_000  # per connection
FIRST_RETRY = timedelta(seconds=30)
REASON = "Busy in the connected calendar"


@dataclass(frozen=True)
class SyncJob:
    connection_id: uuid.UUID
    app_id: uuid.UUID
    resource_id: uuid.UUID
    account: remote.Account
    sync_token: str | None  # None: a full sync
    version: datetime  # the connection's updated_at when claimed: a changed one is not applied
    due: datetime  # its next_sync_at when claimed: moved since, a sync was asked for meanwhile
    timezone: str = "UTC"  # the resource's, when claimed: what `expand` reads dates in


@dataclass(frozen=True)
class Expanded:
    """What the changed objects keep busy (`expand`), read in `timezone`, with what was not
    readable."""

    timezone: str
    wanted: dict[str, list[Busy]]
    errors: list[str]


def expand(pulled: remote.Pulled, *, timezone: str, now: datetime) -> Expanded:
    """The busy time of every changed object within the horizon. CPU only, no I/O: the worker
    runs it in a CalDAV thread, outside the transaction (`syncer.py`). On the event loop, in the
    transaction, a pull's expansion held every app's requests for seconds (4.6 s for 30 daily
    events since 1980, within the bounds of `calendars/pull.py`)."""
    zone, steps = ZoneInfo(timezone), Budget()
    horizon = (now - HORIZON_PAST, now + HORIZON_AHEAD)
    wanted: dict[str, list[Busy]] = {}
    errors = []
    for href, ics in pulled.changed.items():
        try:
            found = busy_in(ics, zone=zone, horizon=horizon, budget=steps)
        except BadObject as exc:
            errors.append(f"{href}: {exc}")
            wanted[href] = []
            continue
        wanted[href] = found.busy
        if note := found.note():
            errors.append(f"{href}: {note}")
    return Expanded(timezone, wanted, errors)


@dataclass
class SyncReport:
    added: int = 0
    removed: int = 0
    conflicts: list[uuid.UUID] = field(default_factory=list)


async def claim_due(
    session: AsyncSession,
    *,
    now: datetime,
    worker_id: str,
    lease: timedelta,
    limit: int,
    encryption_key: str | None,
    per_app: int | None = None,
    skip: Collection[uuid.UUID] = (),
    skip_apps: Collection[uuid.UUID] = (),
) -> list[SyncJob]:
    """Take connections whose pull is due, with a lease (SKIP LOCKED on PostgreSQL): at most
    `per_app` of one app (the soonest due), none of `skip` (in flight here) nor of `skip_apps`."""
    due = [
        CalendarConnection.pull.is_(True),
        CalendarConnection.next_sync_at <= now,
        or_(CalendarConnection.locked_until.is_(None), CalendarConnection.locked_until < now),
    ]
    if skip:
        due.append(CalendarConnection.id.not_in(list(skip)))
    if skip_apps:
        due.append(CalendarConnection.app_id.not_in(list(skip_apps)))
    if per_app is not None:  # one app's many due calendars do not take every sync slot
        soonest = func.row_number().over(
            partition_by=CalendarConnection.app_id,
            order_by=(CalendarConnection.next_sync_at, CalendarConnection.id),
        )
        ranked = select(CalendarConnection.id, soonest.label("n")).where(*due).subquery()
        due.append(CalendarConnection.id.in_(select(ranked.c.id).where(ranked.c.n <= per_app)))
    async with session.begin():
        rows = list(
            (
                await session.scalars(
                    select(CalendarConnection)
                    .where(*due)
                    .order_by(CalendarConnection.next_sync_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
        )
        zones: dict[uuid.UUID, str] = {
            id_: zone
            for id_, zone in await session.execute(
                select(Resource.id, Resource.timezone).where(
                    Resource.id.in_([c.resource_id for c in rows])
                )
            )
        }
        jobs = []
        for conn in rows:
            conn.locked_until, conn.locked_by = now + lease, worker_id
            conn.last_sync_at = now
            try:
                password = keys.decrypt(encryption_key, conn.password_encrypted)
            except keys.KeyMissing as exc:
                _failed(conn, str(exc), now=now, interval=lease)
                continue
            full = conn.last_full_sync_at is None or conn.last_full_sync_at + FULL_SYNC_EVERY <= now
            jobs.append(
                SyncJob(
                    connection_id=conn.id,
                    app_id=conn.app_id,
                    resource_id=conn.resource_id,
                    account=remote.Account(conn.url, conn.username, password),
                    sync_token=None if full else conn.sync_token,
                    version=conn.updated_at,
                    due=conn.next_sync_at,
                    timezone=zones.get(conn.resource_id, "UTC"),
                )
            )
        return jobs


def _failed(conn: CalendarConnection, message: str, *, now: datetime, interval: timedelta) -> None:
    conn.failures += 1
    conn.last_error, conn.last_error_at = message[:500], now
    backoff = FIRST_RETRY * 2 ** min(conn.failures - 1, 16)
    conn.next_sync_at = now + min(backoff, interval)
    conn.locked_until, conn.locked_by = None, None


async def _mine(session: AsyncSession, job: SyncJob, worker_id: str) -> CalendarConnection | None:
    conn = await session.scalar(
        select(CalendarConnection)
        .where(CalendarConnection.id == job.connection_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if conn is None or conn.locked_by != worker_id or conn.updated_at != job.version:
        return None  # disconnected, changed, or taken over after our lease ran out
    return conn


def _asked_meanwhile(conn: CalendarConnection, job: SyncJob) -> datetime | None:
    """When a sync was asked for (POST .../calendar/sync) while this one ran: it stays due, so
    the next round takes it (this one may have fetched before what the caller wants seen)."""
    return conn.next_sync_at if conn.next_sync_at != job.due else None


async def fail(
    session: AsyncSession,
    *,
    job: SyncJob,
    message: str,
    now: datetime,
    worker_id: str,
    interval: timedelta,
) -> None:
    """Record a failed sync; it is retried with backoff (30 s, 1 min, ... up to the interval).
    Bookings are never blocked by it."""
    async with session.begin():
        conn = await _mine(session, job, worker_id)
        if conn is not None:
            asked = _asked_meanwhile(conn, job)
            _failed(conn, message, now=now, interval=interval)
            conn.next_sync_at = asked or conn.next_sync_at
            calendar_events.sync_failed(session, conn, now=now)


async def apply(
    session: AsyncSession,
    *,
    job: SyncJob,
    pulled: remote.Pulled,
    now: datetime,
    worker_id: str,
    interval: timedelta,
    expanded: Expanded | None = None,
) -> SyncReport | None:
    """Turn the changes into blocks, in one transaction with the new sync token; `expanded`:
    their busy time, worked out before (expanded here if not, or in another zone)."""
    report = SyncReport()
    async with session.begin():
        conn = await _mine(session, job, worker_id)
        if conn is None:
            return None
        resources, _ = await queries.lock_resources(
            session, job.app_id, [job.resource_id], hold=True
        )
        timezone = resources[job.resource_id].timezone
        if expanded is None or expanded.timezone != timezone:
            expanded = expand(pulled, timezone=timezone, now=now)
        wanted, errors = dict(expanded.wanted), list(expanded.errors)
        await _drop_our_own(session, job.app_id, wanted)
        existing = await _existing(session, conn.id)
        gone = set(pulled.deleted)
        if pulled.full:
            gone |= set(existing) - set(wanted)
        report.removed += len(
            await remove_pulled_blocks(session, conn, now=now, hrefs=gone - set(wanted))
        )
        untouched = set(existing) - set(wanted) - gone
        budget = MAX_BLOCKS - sum(len(existing[h]) for h in untouched)
        new_blocks: list[ResourceBlock] = []
        for href, busy in sorted(wanted.items()):
            have = existing.get(href, [])
            keep = Counter((b.start_time, b.end_time) for b in have)
            want = Counter((b.start, b.end) for b in busy)
            stale = [b.id for b in have if _take(keep, want, b)]
            if stale:
                report.removed += len(stale)
                await remove_blocks(session, stale, now=now)
            for b in busy:
                if want[(b.start, b.end)] > 0 and budget > 0:
                    want[(b.start, b.end)] -= 1
                    budget -= 1
                    new_blocks.append(_block(conn, href, b, now))
        if budget <= 0:
            errors.append(f"more than {MAX_BLOCKS} busy intervals; the rest were skipped")
        session.add_all(new_blocks)
        await session.flush()
        session.add_all(block_hold(b) for b in new_blocks)
        report.added = len(new_blocks)
        report.conflicts = await _flag_conflicts(session, conn, new_blocks, now)
        conn.sync_token = pulled.sync_token
        if pulled.full:
            conn.last_full_sync_at = now
        conn.last_success_at = now
        calendar_events.sync_succeeded(session, conn, now=now)
        conn.failures = 0
        conn.last_error = "; ".join(errors)[:500] or None
        conn.last_error_at = now if errors else None
        conn.next_sync_at = _asked_meanwhile(conn, job) or now + interval
        conn.locked_until, conn.locked_by = None, None
    return report


def _take(
    keep: Counter[tuple[datetime, datetime]],
    want: Counter[tuple[datetime, datetime]],
    b: ResourceBlock,
) -> bool:
    """True when an existing block is no longer wanted (consumes one wanted copy otherwise)."""
    key = (b.start_time, b.end_time)
    if want[key] > 0:
        want[key] -= 1
        return False
    return True


def _block(conn: CalendarConnection, href: str, busy: Busy, now: datetime) -> ResourceBlock:
    return ResourceBlock(
        app_id=conn.app_id,
        resource_id=conn.resource_id,
        start_time=busy.start,
        end_time=busy.end,
        reason=REASON,
        created_at=now,
        calendar_id=conn.id,
        calendar_href=href[:2048],
        calendar_uid=busy.uid[:500] or None,
    )


async def _existing(
    session: AsyncSession, connection_id: uuid.UUID
) -> dict[str, list[ResourceBlock]]:
    rows = await session.scalars(
        select(ResourceBlock).where(
            ResourceBlock.calendar_id == connection_id, ResourceBlock.deleted_at.is_(None)
        )
    )
    out: dict[str, list[ResourceBlock]] = {}
    for b in rows:
        out.setdefault(b.calendar_href or "", []).append(b)
    return out


async def _drop_our_own(
    session: AsyncSession, app_id: uuid.UUID, wanted: dict[str, list[Busy]]
) -> None:
    """Events whose UID is one of this app's bookings came from slotgraph (a push): not busy
    time from outside, even where a server dropped the X-SLOTGRAPH-BOOKING-ID mark."""
    uids = set()
    for busy in wanted.values():
        for b in busy:
            try:
                uids.add(uuid.UUID(b.uid))
            except ValueError:
                continue
    if not uids:
        return
    ours = {
        str(i)
        for i in await session.scalars(
            select(Booking.id).where(Booking.app_id == app_id, Booking.id.in_(sorted(uids)))
        )
    }
    for href, busy in wanted.items():
        wanted[href] = [b for b in busy if b.uid not in ours]


async def _flag_conflicts(
    session: AsyncSession, conn: CalendarConnection, blocks: list[ResourceBlock], now: datetime
) -> list[uuid.UUID]:
    """New busy time over a booking that was free when booked: `calendar.conflict`, once per
    (block, booking), when the block appears (or moves). The booking stands; someone has to
    decide (docs/calendars.md)."""
    flagged: list[uuid.UUID] = []
    if not blocks:
        return flagged
    # One query narrows the blocks to those near a booking at all; only those are checked.
    held = (
        await session.execute(
            select(BookingHold.start_time, BookingHold.end_time).where(
                BookingHold.resource_id == conn.resource_id,
                BookingHold.active.is_(True),
                BookingHold.booking_id.is_not(None),
                BookingHold.start_time < max(b.end_time for b in blocks),
                BookingHold.end_time > min(b.start_time for b in blocks),
            )
        )
    ).all()
    near = [b for b in blocks if any(s < b.end_time and e > b.start_time for s, e in held)]
    for block in near:
        for booking_id in await bookings_under(
            session, conn.resource_id, block.start_time, block.end_time, now=now
        ):
            flagged.append(booking_id)
            record_event(
                session,
                app_id=conn.app_id,
                type_=calendar_events.CONFLICT,
                booking_id=booking_id,
                data={
                    "resource_id": str(conn.resource_id),
                    "booking_id": str(booking_id),
                    "block": {
                        "block_id": str(block.id),
                        "start_time": block.start_time.isoformat(),
                        "end_time": block.end_time.isoformat(),
                        "calendar_uid": block.calendar_uid,
                    },
                },
                now=now,
            )
    return flagged
