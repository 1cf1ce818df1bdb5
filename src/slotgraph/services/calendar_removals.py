"""A disconnect's event, and with `remove_pushed` the worker's removal of the events slotgraph
pushed (docs/calendars.md).

Every disconnect emits `calendar.disconnected` (`resource_id`, `remove_pushed`): a webhook event
like any other (docs/webhooks.md), and shown by `GET /v1/events`. Before, it was written only
with `remove_pushed`, kept from webhooks, and carried an internal id (the stopped push target's),
which `GET /v1/events` showed.

With `remove_pushed`, the request disconnects at once and queues the removal as a delivery of
the delivery pipeline (services/deliveries.py): a target of its own (a `webhook_endpoints` row
with `calendar_id`, wanting only `REMOVAL`; the fan-out never gives it an event), that one
event, one delivery, claimed with a lease, logged per attempt and retried on the webhook
schedule. The connection stays, hidden (`disconnected_at`: neither shown, pulled nor pushed, and
its resource may be connected again), for its account, until the removal succeeds or its last
attempt fails. Its push target, stopped, stays tied to it (`calendar_id`, `deleted_at` set) as
long: that is how the removal finds the pushes it waits for.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

import orjson
from sqlalchemy import Exists, Select, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import (
    CalendarConnection,
    Delivery,
    DeliveryAttempt,
    ResourceBlock,
    WebhookEndpoint,
)
from slotgraph.domain.deliveries import MAX_ATTEMPTS
from slotgraph.services import calendar_events, calendar_pushes
from slotgraph.services.outbox import new_delivery, record_event

REMOVAL = calendar_events.DISCONNECTED  # the event; the removal's target wants nothing else
CLEAR_BATCH = 1_000  # blocks of a disconnected calendar let go of in one transaction
# The error of an attempt that found pushes of the connection still in flight: a wait, which
# `pushes_ended` cuts short, not a failure of the server, whose backoff it keeps.
WAITING = "waiting for "


def waiting(pushes: int) -> str:
    return f"{WAITING}{pushes} pushes in flight"


def is_removal(payload: str) -> bool:
    """Whether a calendar target's claimed event is a removal (else: a booking's push)."""
    return bool(orjson.loads(payload).get("type") == REMOVAL)


async def disconnected(
    session: AsyncSession,
    conn: CalendarConnection,
    *,
    now: datetime,
    remove_pushed: bool,
    pushes: uuid.UUID | None,
) -> None:
    """In the disconnect's transaction: the event `calendar.disconnected` (public fields only:
    webhooks get it), and with `remove_pushed` the connection hidden and its removal queued
    (`pushes`: the connection's push target, stopped, still tied to it)."""
    event = record_event(
        session,
        app_id=conn.app_id,
        type_=REMOVAL,
        booking_id=None,
        data={"resource_id": str(conn.resource_id), "remove_pushed": remove_pushed},
        now=now,
    )
    conn.disconnected_at, conn.updated_at = now, now  # hidden: its blocks are let go first
    conn.pull, conn.push = False, False
    conn.locked_until, conn.locked_by = None, None
    if not remove_pushed:
        return
    target = calendar_pushes.calendar_target(
        conn,
        now=now,
        events=[REMOVAL],
        description=f"calendar removal (disconnected from resource {conn.resource_id})",
        enabled=True,
    )
    session.add(target)
    await session.flush()
    removal = new_delivery(target, event, now)
    # Due when the pushes claimed before now can no longer PUT (their leases' end), or as soon
    # as the last of them is recorded (`pushes_ended`): waiting for them is not an attempt.
    # Before, the removal was due at once, and each attempt that found a push still leased
    # failed and was retried (5 s, 5 min, ...): a push held in flight used up its attempts.
    removal.next_attempt_at = max(now, await _lease_end(session, pushes, now=now) or now)
    session.add(removal)


async def _lease_end(
    session: AsyncSession, pushes: uuid.UUID | None, *, now: datetime
) -> datetime | None:
    """When the last lease of the pushes in flight (claimed, not yet recorded) ends, as
    committed: one aggregate, no row locked. Before, every pending push of the connection was
    locked (FOR UPDATE) and read, so a claim being written was waited for: a request whose work
    grew with the backlog (a backfill queues up to 5,000 pushes, each change of a booking one
    more). A claim that commits after this read and before the disconnect does is not counted
    here; its push, if it PUTs, is still leased when the removal starts, and that attempt
    waits for it (`pushes_in_flight`). A claim that commits after the disconnect reads the
    connection as disconnected and sends nothing (calendar_pushes.push_target)."""
    if pushes is None:
        return None
    return await session.scalar(
        select(func.max(Delivery.locked_until)).where(
            Delivery.endpoint_id == pushes,
            Delivery.status == "pending",
            Delivery.locked_until > now,
        )
    )


async def pushes_ended(
    session: AsyncSession, *, targets: Collection[uuid.UUID], now: datetime
) -> int:
    """After the worker recorded deliveries to calendar `targets`: a removal waiting for the
    pushes of its (hidden) connection is due now when none of them is leased any more. Before,
    it waited for the end of their leases (60 s after the disconnect) even when the push in
    flight ended at once. Only a stopped push target (`deleted_at`) tied to a hidden connection
    counts: not a live connection's pushes, nor the removal itself (a failed attempt keeps its
    retry time, and so does one whose last attempt failed at the server). One query when none
    of them is (the usual case). Returns how many removals were made due."""
    async with session.begin():
        hidden = list(
            await session.scalars(
                select(WebhookEndpoint.calendar_id)
                .join(CalendarConnection, CalendarConnection.id == WebhookEndpoint.calendar_id)
                .where(
                    WebhookEndpoint.id.in_(sorted(targets)),
                    WebhookEndpoint.deleted_at.is_not(None),
                    CalendarConnection.disconnected_at.is_not(None),
                )
                .distinct()
            )
        )
        made = 0
        for calendar_id in hidden:
            if calendar_id is None or await pushes_in_flight(session, calendar_id, now=now):
                continue
            target = select(WebhookEndpoint.id).where(
                WebhookEndpoint.calendar_id == calendar_id, WebhookEndpoint.deleted_at.is_(None)
            )
            done = await session.execute(
                update(Delivery)
                .where(
                    Delivery.endpoint_id.in_(target.scalar_subquery()),
                    Delivery.status == "pending",
                    Delivery.next_attempt_at > now,
                    or_(Delivery.locked_until.is_(None), Delivery.locked_until < now),
                    or_(Delivery.attempts == 0, _last_attempt_waited()),
                )
                .values(next_attempt_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            made += done.rowcount  # type: ignore[attr-defined]
        return made


def _last_attempt_waited() -> Exists:
    """The removal's last attempt found pushes in flight (`waiting`). One that failed at the
    server keeps its backoff: before, a push recorded after it (its lease had ended, so the
    attempt did not wait for it) made the removal due at once, a retry's 5 min cut short."""
    return exists().where(
        DeliveryAttempt.endpoint_id == Delivery.endpoint_id,
        DeliveryAttempt.delivery_id == Delivery.id,
        DeliveryAttempt.attempt == Delivery.attempts,
        DeliveryAttempt.error.startswith(WAITING, autoescape=True),
    )


async def pushes_in_flight(session: AsyncSession, calendar_id: uuid.UUID, *, now: datetime) -> int:
    """How many pushes of the disconnected connection are still claimed (leased) now. The
    removal is due when they end or are recorded (`disconnected`, `pushes_ended`), so this is 0
    unless a claim committed in the instant of the disconnect (`_lease_end`) or the clocks of
    the processes disagree; then the attempt fails and is retried, brought forward when the
    push is recorded (a PUT after the removal's listing would stay in the calendar for good)."""
    stopped = select(WebhookEndpoint.id).where(
        WebhookEndpoint.calendar_id == calendar_id, WebhookEndpoint.deleted_at.is_not(None)
    )
    return int(
        await session.scalar(
            select(func.count()).where(
                Delivery.endpoint_id.in_(stopped.scalar_subquery()),
                Delivery.status == "pending",
                Delivery.locked_until > now,
            )
        )
        or 0
    )


async def finish(
    session: AsyncSession,
    *,
    calendar_id: uuid.UUID,
    now: datetime,
    failed: bool = False,
    error: str | None = None,
) -> bool:
    """After an attempt: the removal done (or, `failed`, its last attempt failed, with
    `error`), the hidden connection and its targets go, and the event
    `calendar.removal_succeeded` (or `calendar.removal_failed`) says so, in the same
    transaction. Returns whether they went (a failed attempt with retries left keeps them).
    Before, the end was a log line of the worker only."""
    async with session.begin():
        target = await session.scalar(_removal_target(calendar_id).with_for_update())
        if target is None:
            return True
        if failed:
            attempts = await session.scalar(
                select(Delivery.attempts).where(
                    Delivery.endpoint_id == target.id, Delivery.status == "pending"
                )
            )
            if attempts is not None and attempts < MAX_ATTEMPTS:
                return False
        conn = await session.get(CalendarConnection, calendar_id)
        if conn is not None:
            if failed:
                calendar_events.emit(
                    session,
                    conn,
                    calendar_events.REMOVAL_FAILED,
                    now=now,
                    error=(error or "")[:500] or None,
                )
            else:
                calendar_events.emit(session, conn, calendar_events.REMOVAL_SUCCEEDED, now=now)
        await _end(session, target, calendar_id, now=now)
        return True


async def drop_for(
    session: AsyncSession, *, resource_id: uuid.UUID, url: str, now: datetime
) -> None:
    """In a connect's transaction: a removal still pending for the calendar connected again is
    dropped. It would delete the new connection's pushes (the current bookings, pushed again)."""
    hidden = await session.scalars(
        select(CalendarConnection.id).where(
            CalendarConnection.resource_id == resource_id,
            CalendarConnection.url == url,
            CalendarConnection.disconnected_at.is_not(None),
        )
    )
    for calendar_id in list(hidden):
        await _end(
            session, await session.scalar(_removal_target(calendar_id)), calendar_id, now=now
        )


def _removal_target(calendar_id: uuid.UUID) -> Select[WebhookEndpoint]:
    """The hidden connection's removal target (its stopped push target has `deleted_at`)."""
    return select(WebhookEndpoint).where(
        WebhookEndpoint.calendar_id == calendar_id, WebhookEndpoint.deleted_at.is_(None)
    )


async def _end(
    session: AsyncSession,
    target: WebhookEndpoint | None,
    calendar_id: uuid.UUID,
    *,
    now: datetime,
) -> None:
    """The removal's target stops (its log stays), the stopped push target lets go of the
    connection, and the hidden connection goes."""
    if target is not None:
        target.enabled, target.deleted_at, target.updated_at = False, now, now
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.calendar_id == calendar_id)
        .values(calendar_id=None)
        .execution_options(synchronize_session="fetch")
    )
    conn = await session.get(CalendarConnection, calendar_id)
    if conn is not None and conn.disconnected_at is not None and not await _pulled(session, conn):
        await session.delete(conn)  # else the worker lets go of its blocks first, then of it


async def _pulled(session: AsyncSession, conn: CalendarConnection) -> bool:
    """Whether blocks (deleted or not) still name the connection."""
    return bool(await session.scalar(select(exists().where(ResourceBlock.calendar_id == conn.id))))


async def clear_disconnected(session: AsyncSession) -> int:
    """The worker's part of a disconnect: `CLEAR_BATCH` blocks of one hidden connection marked
    deleted (as of the disconnect) and let go of (`calendar_id`; the origin stays in
    calendar_href/uid), in one transaction; when none is left, the hidden connections with no
    blocks and no removal to come go. Their holds stopped at the disconnect; so nothing here
    changes what is busy. Before, the request did all of it: every block the connection had
    ever pulled, in one transaction (50,000 on SQLite: 2.0 s holding the write lock; on
    PostgreSQL a 500 past 32,767). A batch takes 14-18 ms. Returns the rows it changed (0:
    nothing left)."""
    async with session.begin():
        row = (
            await session.execute(
                select(CalendarConnection.id, CalendarConnection.disconnected_at)
                .where(
                    CalendarConnection.disconnected_at.is_not(None),
                    exists().where(ResourceBlock.calendar_id == CalendarConnection.id),
                )
                .limit(1)
            )
        ).first()
        if row is not None:
            calendar_id, at = row
            ids = select(ResourceBlock.id).where(ResourceBlock.calendar_id == calendar_id)
            done = await session.execute(
                update(ResourceBlock)
                .where(ResourceBlock.id.in_(ids.limit(CLEAR_BATCH).scalar_subquery()))
                .values(deleted_at=func.coalesce(ResourceBlock.deleted_at, at), calendar_id=None)
                .execution_options(synchronize_session=False)
            )
            return int(done.rowcount)  # type: ignore[attr-defined]
        gone = list(
            await session.scalars(
                select(CalendarConnection)
                .where(
                    CalendarConnection.disconnected_at.is_not(None),
                    ~exists().where(WebhookEndpoint.calendar_id == CalendarConnection.id),
                )
                .limit(CLEAR_BATCH)
            )
        )
        for conn in gone:
            await session.delete(conn)
        return len(gone)
