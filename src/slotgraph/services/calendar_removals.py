"""Disconnect with `remove_pushed`: the worker deletes the events slotgraph pushed, not the
request (docs/calendars.md).

Before, the request itself talked to the calendar's server, for up to 300 s (a CalDAV call's
deadline) against a slow one. Now the request disconnects at once and queues the removal as a
delivery of the delivery pipeline (services/deliveries.py): a target of its own (a
`webhook_endpoints` row with `calendar_id`, wanting only `REMOVAL`), one event, one delivery,
claimed with a lease, logged per attempt and retried on the webhook schedule. The connection
stays, hidden (`disconnected_at`: neither shown, pulled nor pushed, and its resource may be
connected again), for its account, until the removal succeeds or its last attempt fails.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import CalendarConnection, Delivery, WebhookEndpoint
from slotgraph.domain.deliveries import MAX_ATTEMPTS
from slotgraph.services import calendar_pushes
from slotgraph.services.outbox import new_delivery, record_event

REMOVAL = "calendar.disconnected"  # the event; its target wants nothing else


def is_removal(payload: str) -> bool:
    """Whether a calendar target's claimed event is a removal (else: a booking's push)."""
    return bool(orjson.loads(payload).get("type") == REMOVAL)


async def queue(
    session: AsyncSession,
    conn: CalendarConnection,
    *,
    now: datetime,
    pushes: uuid.UUID | None,
) -> None:
    """In the disconnect's transaction: hide the connection and queue its removal (`pushes`:
    the connection's push target, stopped, whose pushes in flight the removal waits for)."""
    conn.disconnected_at, conn.updated_at = now, now
    conn.pull, conn.push = False, False
    conn.locked_until, conn.locked_by = None, None
    target = calendar_pushes.calendar_target(
        conn,
        now=now,
        events=[REMOVAL],
        description=f"calendar removal (disconnected from resource {conn.resource_id})",
        enabled=True,
    )
    session.add(target)
    event = record_event(
        session,
        app_id=conn.app_id,
        type_=REMOVAL,
        booking_id=None,
        data={
            "resource_id": str(conn.resource_id),
            "remove_pushed": True,
            "push_target_id": str(pushes) if pushes else None,
        },
        now=now,
    )
    event.dispatched_at = now  # for this target only: not a webhook event
    await session.flush()
    session.add(new_delivery(target, event, now))


async def pushes_in_flight(session: AsyncSession, payload: str, *, now: datetime) -> int:
    """How many pushes of the disconnected connection are still claimed (leased) now. A push
    claimed before the disconnect may PUT until its lease ends (its send's deadline is within
    it: syncer.py `_send_seconds`); a removal that listed the calendar before that PUT left
    the event there for good. So the removal waits for them (its attempt fails, and is
    retried); pushes read after the disconnect are not sent (calendar_pushes.push_target)."""
    target_id = orjson.loads(payload)["data"].get("push_target_id")
    if target_id is None:
        return 0
    return int(
        await session.scalar(
            select(func.count()).where(
                Delivery.endpoint_id == uuid.UUID(target_id),
                Delivery.status == "pending",
                Delivery.locked_until > now,
            )
        )
        or 0
    )


async def finish(
    session: AsyncSession, *, calendar_id: uuid.UUID, now: datetime, failed: bool = False
) -> bool:
    """After an attempt: the removal done (or, `failed`, its last attempt failed), the hidden
    connection and its target go. Returns whether they went (a failed attempt with retries
    left keeps them)."""
    async with session.begin():
        target = await session.scalar(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.calendar_id == calendar_id)
            .with_for_update()
        )
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
        target = await session.scalar(
            select(WebhookEndpoint).where(WebhookEndpoint.calendar_id == calendar_id)
        )
        await _end(session, target, calendar_id, now=now)


async def _end(
    session: AsyncSession,
    target: WebhookEndpoint | None,
    calendar_id: uuid.UUID,
    *,
    now: datetime,
) -> None:
    """The removal's target stops (its log stays) and the hidden connection goes."""
    if target is not None:
        target.enabled, target.deleted_at, target.updated_at = False, now, now
        target.calendar_id = None
        await session.flush()
    conn = await session.get(CalendarConnection, calendar_id)
    if conn is not None and conn.disconnected_at is not None:
        await session.delete(conn)
