"""CalDAV pull, the worker side: claim a due connection, (fetch, outside any transaction),
apply the changes as blocks in one transaction, or record the failure and retry later.

Applying is idempotent: the blocks of each calendar object are diffed against what that object
keeps busy now, and the new sync token is stored in the same transaction. A worker killed
mid-sync loses its lease; the next one fetches from the last stored token again, and the diff
makes the second application a no-op for anything already applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.calendars import keys, remote
from slotgraph.db import queries
from slotgraph.db.models import CalendarConnection, Resource
from slotgraph.services import calendar_events, calendar_pulled
from slotgraph.services.calendar_pulled import Expanded, SyncReport, expand

FULL_SYNC_EVERY = timedelta(hours=24)  # re-expands recurring events as the horizon moves
FIRST_RETRY = timedelta(seconds=30)


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
    resume: str | None = None  # a sweep's next pull: read from this URL on (`apply`)


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
            full = (
                conn.last_full_sync_at is None
                or conn.last_full_sync_at + FULL_SYNC_EVERY <= now
                or conn.pull_resume is not None  # a sweep lists the calendar whole (`_advance`)
            )
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
                    resume=conn.pull_resume,
                )
            )
        return jobs


TURNS = "read in turns (larger than a pull reads): the next pulls go on where this one stopped"


def _advance(
    conn: CalendarConnection,
    job: SyncJob,
    pulled: remote.Pulled,
    expanded: Expanded,
    *,
    now: datetime,
) -> None:
    """The connection's token and sweep after a pull that was applied.

    A pull that leaves objects unread (its budget spent, `expanded.resume`) begins a sweep, or
    goes on with one: the next pulls list the calendar whole (`claim_due`) and read its objects
    in the order of their URLs from where the last one stopped, one budget each, until one has
    read to the end. Then the sweep is done (a full sync), and the pulls go on incrementally
    from the token stored when it began: whatever changed meanwhile, in objects read earlier in
    the sweep too, is listed again from it. The work of a sweep's pull is a pull's (the bounds
    of calendars/pull.py); a calendar of N budgets is read whole in N pulls.

    Before, the token moved on past the objects left unread: changes there were seen at the
    next full sync (a day later), which read in the server's order and left the same objects
    unread, so a calendar always larger than a pull never updated its last objects at all."""
    sweeping = job.resume is not None
    if not sweeping:
        conn.sync_token = pulled.sync_token
    if expanded.resume is None:  # read to the end
        conn.pull_resume = None
        if pulled.full:
            conn.last_full_sync_at = now
    else:
        conn.pull_resume = expanded.resume[:2048]


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
    async with session.begin():
        conn = await _mine(session, job, worker_id)
        if conn is None:
            return None
        resources, _ = await queries.lock_resources(
            session, job.app_id, [job.resource_id], hold=True
        )
        timezone = resources[job.resource_id].timezone
        if expanded is None or expanded.timezone != timezone:
            expanded = expand(pulled, timezone=timezone, now=now, resume=job.resume)
        errors = list(expanded.errors)
        if expanded.resume is not None:
            errors.insert(0, TURNS)
        report = await calendar_pulled.write(
            session,
            conn,
            pulled=pulled,
            wanted=expanded.wanted,
            errors=errors,
            now=now,
            unread=expanded.unread,
        )
        _advance(conn, job, pulled, expanded, now=now)
        conn.last_success_at = now
        calendar_events.sync_succeeded(session, conn, now=now)
        conn.failures = 0
        conn.last_error = "; ".join(errors)[:500] or None
        conn.last_error_at = now if errors else None
        conn.next_sync_at = _asked_meanwhile(conn, job) or now + interval
        conn.locked_until, conn.locked_by = None, None
    return report
