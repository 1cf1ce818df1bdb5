"""CalDAV connections, the API side: connect, show, sync now, disconnect (docs/calendars.md).

Talking to the CalDAV server (a probe on connect) happens before the transaction, never inside
it; removing pushed events on disconnect is the worker's (calendar_removals.py).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.calendar_schemas import (
    CalendarConflict,
    CalendarConnect,
    CalendarCounts,
    CalendarOut,
)
from slotgraph.calendars import keys, remote
from slotgraph.db.models import (
    App,
    Booking,
    BookingHold,
    CalendarConnection,
    ResourceBlock,
    WebhookEndpoint,
)
from slotgraph.domain.rules import payment_overdue
from slotgraph.errors import (
    CalendarAuthFailed,
    CalendarUnreachable,
    EncryptionKeyMissing,
    LimitReached,
    NotFound,
    ValidationFailed,
)
from slotgraph.services import calendar_events, calendar_pushes, calendar_removals
from slotgraph.services.common import Principal
from slotgraph.services.resources import load_resource
from slotgraph.webhooks.ssrf import UrlNotAllowed, check_url

MAX_CONFLICTS_SHOWN = 100
# Calendars an app may connect. Each pushing one is a target of the worker's fan-out, which
# weighs every event against every target of its app: 100 events against 1,000 calendar targets
# took 0.71 s of CPU on the worker's event loop (0.51 s with each payload parsed once), and its
# statements carry one parameter per target.
MAX_CALENDARS = 1_000
# What a connect's check of the server may take inside the request, waiting for the app's turn
# at the CalDAV threads included (remote.PER_APP): before, up to the 300 s of a sync, plus the
# time queued for a thread.
PROBE_SECONDS = 20.0


async def check_key(session: AsyncSession, *, encryption_key: str | None) -> None:
    """Refuse to start when a connection exists and no key decrypts its password."""
    async with session.begin():
        sample = await session.scalar(select(CalendarConnection.password_encrypted).limit(1))
    if sample is None:
        return
    try:
        keys.decrypt(encryption_key, sample)
    except keys.KeyMissing as exc:
        raise SystemExit(
            f"Calendar connections exist, but their passwords cannot be decrypted: {exc} "
            "Set SLOTGRAPH_ENCRYPTION_KEY (docs/calendars.md)."
        ) from None


async def guard_url(url: str, *, allow_private: bool) -> None:
    """The SSRF guard of webhooks, for calendar URLs: at connect and at every sync."""
    try:
        await check_url(url, allow_private=allow_private)
    except UrlNotAllowed as exc:
        raise ValidationFailed.one("url", str(exc)) from None


async def _probe(app_id: uuid.UUID, account: remote.Account, *, allow_private: bool) -> None:
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            await remote.call(
                app_id, remote.probe, account, allow_private=allow_private, deadline=PROBE_SECONDS
            )
    except TimeoutError:
        raise CalendarUnreachable(
            f"The CalDAV server did not answer within {PROBE_SECONDS:.0f} s "
            "(or this app's other calendar calls held its turn that long); try again.",
            reason="unreachable",
        ) from None
    except remote.RemoteError as exc:
        if exc.kind == "auth":
            raise CalendarAuthFailed(str(exc)) from None
        raise CalendarUnreachable(str(exc), reason=exc.kind) from None


async def connect(
    session: AsyncSession,
    *,
    principal: Principal,
    resource_id: uuid.UUID,
    data: CalendarConnect,
    now: datetime,
    encryption_key: str | None,
    allow_private: bool,
) -> tuple[CalendarOut, bool]:
    """Connect (or replace) the resource's calendar after checking that it answers to these
    credentials. A first sync is due at once. Returns the state and whether it is new."""
    async with session.begin():
        # 404 before anything else: another app's resource is not found, whatever the settings
        await load_resource(session, principal.app_id, resource_id)
        await _room_for(session, principal.app_id, resource_id)  # before a probe is spent
    try:
        encrypted = keys.encrypt(encryption_key, data.password)
    except keys.KeyMissing as exc:
        raise EncryptionKeyMissing(f"Calendar passwords are stored encrypted: {exc}") from None
    await guard_url(data.url, allow_private=allow_private)
    await _probe(
        principal.app_id,
        remote.Account(data.url, data.username, data.password),
        allow_private=allow_private,
    )
    async with session.begin():
        await _room_for(session, principal.app_id, resource_id, lock=True)
        resource = await load_resource(session, principal.app_id, resource_id, lock=True)
        await calendar_removals.drop_for(session, resource_id=resource.id, url=data.url, now=now)
        conn = await session.scalar(
            select(CalendarConnection).where(
                CalendarConnection.resource_id == resource.id,
                CalendarConnection.disconnected_at.is_(None),
            )
        )
        created = conn is None
        if conn is None:
            conn = CalendarConnection(
                app_id=principal.app_id, resource_id=resource.id, failures=0, created_at=now
            )
            session.add(conn)
        elif conn.url != data.url:
            conn.sync_token = None  # another calendar: the next sync is a full one
            conn.last_full_sync_at = None
            conn.pull_resume = None
        conn.url, conn.username, conn.password_encrypted = data.url, data.username, encrypted
        conn.push, conn.pull = data.push, data.pull
        conn.next_sync_at, conn.failures, conn.last_error, conn.last_error_at = now, 0, None, None
        conn.locked_until, conn.locked_by = None, None  # a sync in flight is for the old state
        conn.updated_at = now
        await session.flush()
        await calendar_pushes.set_target(session, conn, now=now)
        calendar_events.emit(
            session,
            conn,
            calendar_events.CONNECTED,
            now=now,
            url=conn.url,
            push=conn.push,
            pull=conn.pull,
            replaced=not created,
        )
        return await _out(session, conn, now=now), created


async def _room_for(
    session: AsyncSession, app_id: uuid.UUID, resource_id: uuid.UUID, *, lock: bool = False
) -> None:
    """LimitReached if the app has `MAX_CALENDARS` connections and this resource none yet.
    With `lock`, the app's row is locked first: two connects at once count one after the other."""
    if lock:
        await session.execute(select(App.id).where(App.id == app_id).with_for_update())
    removing = exists().where(  # a hidden one with its removal to come (its pushes' target)
        WebhookEndpoint.calendar_id == CalendarConnection.id, WebhookEndpoint.deleted_at.is_(None)
    )
    rows = await session.execute(
        select(
            func.count(),  # those being removed too: rows, with pushes to come
            func.count().filter(
                CalendarConnection.resource_id == resource_id,
                CalendarConnection.disconnected_at.is_(None),
            ),
        ).where(
            CalendarConnection.app_id == app_id,
            or_(CalendarConnection.disconnected_at.is_(None), removing),
        )
    )
    count, this = rows.one()
    if count >= MAX_CALENDARS and not this:
        raise LimitReached(
            f"An app has at most {MAX_CALENDARS:,} connected calendars; disconnect one first."
        )


async def _load(
    session: AsyncSession, principal: Principal, resource_id: uuid.UUID, *, lock: bool = False
) -> CalendarConnection:
    await load_resource(session, principal.app_id, resource_id)
    stmt = select(CalendarConnection).where(
        CalendarConnection.resource_id == resource_id,
        CalendarConnection.app_id == principal.app_id,
        CalendarConnection.disconnected_at.is_(None),  # one being removed is gone already
    )
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    conn = await session.scalar(stmt)
    if conn is None:
        raise NotFound(f"Resource {resource_id} has no calendar connected.")
    return conn


async def get_calendar(
    session: AsyncSession, *, principal: Principal, resource_id: uuid.UUID, now: datetime
) -> CalendarOut:
    async with session.begin():
        return await _out(session, await _load(session, principal, resource_id), now=now)


async def request_sync(
    session: AsyncSession, *, principal: Principal, resource_id: uuid.UUID, now: datetime
) -> CalendarOut:
    """Sync now: the next worker cycle takes it (a sync in flight finishes first, and is kept).
    Not a change of the connection (`updated_at`, which a sync in flight checks before it
    applies: bumped here, it threw that sync's result away and kept the connection leased, so
    "sync now" waited out the worker's lease, 60 s, instead of one cycle)."""
    async with session.begin():
        conn = await _load(session, principal, resource_id, lock=True)
        conn.next_sync_at = now
        return await _out(session, conn, now=now)


async def disconnect(
    session: AsyncSession,
    *,
    principal: Principal,
    resource_id: uuid.UUID,
    now: datetime,
    remove_pushed: bool,
    encryption_key: str | None,
) -> None:
    """Disconnect: pulled blocks stop holding at once; pushed events stay in the calendar unless
    `remove_pushed` (then the worker deletes them, with retries: calendar_removals.py; before,
    the request did, for up to 300 s against a slow server)."""
    async with session.begin():
        conn = await _load(session, principal, resource_id, lock=True)
        if remove_pushed:  # the worker will need the password
            try:
                keys.decrypt(encryption_key, conn.password_encrypted)
            except keys.KeyMissing as exc:
                raise EncryptionKeyMissing(str(exc)) from None
        await _free_pulled_time(session, conn)
        pushes = await calendar_pushes.stop_target(session, conn, now=now, keep=remove_pushed)
        await calendar_removals.disconnected(
            session, conn, now=now, remove_pushed=remove_pushed, pushes=pushes
        )


async def _free_pulled_time(session: AsyncSession, conn: CalendarConnection) -> None:
    """The connection's pulled blocks stop holding, at once: one statement, each of its active
    blocks' holds found by key (ix_booking_holds_block, migration 0020), so the work is the
    connection's blocks (at most 50,000 active: calendar_pulled.MAX_BLOCKS), not the resource's.
    Their rows are marked deleted and let go of by the worker, in batches, while the connection
    is hidden (calendar_removals.clear_disconnected), ADR 0018.

    Before 0020 it went through the resource's active block holds, looking each one's block up
    (an OFFSET fence kept PostgreSQL, with statistics behind a sync's 50,000 new rows, from a
    join that scanned the resource's holds per block): the time of the resource's other blocks
    too. 50,000 pulled and 200,000 other blocks, load 5-9: SQLite 650-890 ms (350 ms of CPU)
    then, 200-450 ms (150 ms) now; PostgreSQL about the same, 1.3-2.8 s, either way (the 50,000
    rows written are most of it), and with stale statistics it plans a loop over the
    connection's blocks, a probe of the index each."""
    pulled = select(ResourceBlock.id).where(
        ResourceBlock.calendar_id == conn.id, ResourceBlock.deleted_at.is_(None)
    )
    await session.execute(
        update(BookingHold)
        .where(BookingHold.block_id.in_(pulled), BookingHold.active.is_(True))
        .values(active=False)
        .execution_options(synchronize_session=False)
    )


def _conflicts_query(conn: CalendarConnection):  # type: ignore[no-untyped-def]
    block_hold = BookingHold.__table__.alias("block_hold")
    return (
        select(
            BookingHold.booking_id,
            ResourceBlock.id,
            ResourceBlock.calendar_uid,
            ResourceBlock.start_time,
            ResourceBlock.end_time,
        )
        .select_from(ResourceBlock)
        .join(block_hold, block_hold.c.block_id == ResourceBlock.id)
        .join(
            BookingHold,
            (BookingHold.resource_id == conn.resource_id)
            & BookingHold.active.is_(True)
            & BookingHold.booking_id.is_not(None)
            & (BookingHold.start_time < ResourceBlock.end_time)
            & (BookingHold.end_time > ResourceBlock.start_time),
        )
        .where(
            ResourceBlock.calendar_id == conn.id,
            ResourceBlock.deleted_at.is_(None),
            block_hold.c.active.is_(True),
        )
    )


async def conflicts(
    session: AsyncSession, conn: CalendarConnection, *, now: datetime
) -> list[CalendarConflict]:
    """Bookings overlapping busy time pulled from the calendar (the time was free when booked)."""
    rows = await session.execute(
        _conflicts_query(conn)
        .add_columns(Booking.status, Booking.payment_due_at)
        .join(Booking, Booking.id == BookingHold.booking_id)
        .order_by(ResourceBlock.start_time, BookingHold.booking_id)
        .limit(MAX_CONFLICTS_SHOWN)
    )
    return [
        CalendarConflict(booking_id=b, block_id=k, calendar_uid=u, start_time=s, end_time=e)
        for b, k, u, s, e, status, due in rows
        # a payment hold past its deadline holds nothing (it times out when next met)
        if not payment_overdue(status=status, payment_due_at=due, now=now)
    ]


async def _out(session: AsyncSession, conn: CalendarConnection, *, now: datetime) -> CalendarOut:
    pulled = await session.scalar(
        select(func.count()).where(
            ResourceBlock.calendar_id == conn.id, ResourceBlock.deleted_at.is_(None)
        )
    )
    found = await conflicts(session, conn, now=now)
    pushes, failed = await calendar_pushes.push_state(session, conn)
    if conn.last_sync_at is None and conn.last_error is None:
        status = "pending"
    else:
        status = "failing" if conn.failures else "ok"
    return CalendarOut(
        resource_id=conn.resource_id,
        url=conn.url,
        username=conn.username,
        push=conn.push,
        pull=conn.pull,
        status=status,
        last_sync_at=conn.last_sync_at,
        last_success_at=conn.last_success_at,
        next_sync_at=conn.next_sync_at if conn.pull else None,
        last_error=conn.last_error,
        last_error_at=conn.last_error_at,
        failures=conn.failures,
        counts=CalendarCounts(
            pulled_blocks=pulled or 0,
            pushed_events=pushes.get("succeeded", 0),
            pending_pushes=pushes.get("pending", 0),
            failed_pushes=pushes.get("failed", 0),
            conflicts=len(found),
        ),
        last_push_error=failed.error if failed else None,
        last_push_error_at=failed.at if failed else None,
        conflicts=found,
        created_at=conn.created_at,
        updated_at=conn.updated_at,
    )
