"""The calendar push channel's part of the delivery pipeline (services/deliveries.py).

A connection with `push` owns a delivery target (a `webhook_endpoints` row with `calendar_id`,
never listed as a webhook), so its pushes are claimed, leased, ordered per booking, retried and
logged exactly like webhooks. What is the channel's own: which booking events it wants (those of
bookings that hold its resource, or that it has pushed before), the backfill of the bookings that
existed when it was connected, and where to send (the account, decrypted at send time).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, load_only

from slotgraph.calendars import keys, remote
from slotgraph.calendars.push import PushTarget
from slotgraph.db.models import (
    Booking,
    BookingHold,
    CalendarConnection,
    Delivery,
    DeliveryAttempt,
    Event,
    Resource,
    WebhookEndpoint,
)
from slotgraph.domain.graphs import SEAT_GRAPHS
from slotgraph.services.outbox import OutboxEvent, Target, new_delivery

BACKFILL_MAX = 5_000


def wanted_without_reads(
    targets: Sequence[Target],
) -> Callable[[Target, OutboxEvent], bool] | None:
    """`wanted`'s filter where it reads nothing: no calendar target among `targets`; None
    otherwise (the fan-out on SQLite runs without a session where it need not:
    services/fanout.py)."""
    if any(t.calendar_id is not None for t in targets):
        return None
    return lambda target, event: True


async def wanted(
    session: AsyncSession, targets: Sequence[Target], events: Sequence[OutboxEvent]
) -> Callable[[Target, OutboxEvent], bool]:
    """The dispatch filter for calendar targets (webhook targets: always true). Call it in
    event order: a booking pushed by an earlier event keeps its later ones (a move away, a
    cancel) going to the same calendar."""
    if (plain := wanted_without_reads(targets)) is not None:
        return plain
    calendar_targets = {t.id: t.calendar_id for t in targets if t.calendar_id is not None}
    resource_of = {
        c: str(r)
        for c, r in await session.execute(
            select(CalendarConnection.id, CalendarConnection.resource_id).where(
                CalendarConnection.id.in_(set(calendar_targets.values())),
                CalendarConnection.disconnected_at.is_(None),  # being removed: no pushes
            )
        )
    }
    booking_ids = {e.booking_id for e in events if e.booking_id is not None}
    pushed: set[tuple[uuid.UUID, uuid.UUID | None]] = set()
    if booking_ids:
        pushed = {
            (t, b)
            for t, b in await session.execute(
                select(Delivery.endpoint_id, Delivery.booking_id)
                .where(
                    Delivery.endpoint_id.in_(list(calendar_targets)),
                    Delivery.booking_id.in_(booking_ids),
                )
                .distinct()
            )
        }

    queued = set(  # by the backfill of a connection made in the instant of the event
        await session.execute(
            select(Delivery.endpoint_id, Delivery.event_id).where(
                Delivery.endpoint_id.in_(list(calendar_targets)),
                Delivery.event_id.in_([e.id for e in events]),
            )
        )
    )

    # Each event's booking, read once: it was parsed for every (target, event) pair, 500
    # events x every calendar target of the app in one fan-out.
    booking_of: dict[uuid.UUID, tuple[bool, list[str]]] = {}

    def wants(target: Target, event: OutboxEvent) -> bool:
        if target.calendar_id is None:
            return True
        if event.booking_id is None or not event.type.startswith("booking."):
            return False
        if (target.id, event.id) in queued:
            return False
        if (read := booking_of.get(event.id)) is None:
            booking = orjson.loads(event.payload)["data"].get("booking") or {}
            read = booking_of[event.id] = (
                booking.get("graph") in SEAT_GRAPHS,
                booking.get("resource_ids", []),
            )
        seat, resource_ids = read
        if seat:
            return False  # a seat is not the resource's time; its class is pushed
        resource = resource_of.get(target.calendar_id)
        key = (target.id, event.booking_id)
        if resource in resource_ids or key in pushed:
            pushed.add(key)
            return True
        return False

    return wants


def calendar_target(
    conn: CalendarConnection, *, now: datetime, events: list[str], description: str, enabled: bool
) -> WebhookEndpoint:
    """A delivery target of the connection's (its pushes, or a removal): a webhook endpoint
    row tied to the calendar, which the worker sends through the calendar's channel."""
    return WebhookEndpoint(
        app_id=conn.app_id,
        url=conn.url,
        events=events,
        description=description,
        enabled=enabled,
        secret="cal_" + secrets.token_hex(16),  # unused: nothing is signed
        created_at=now,
        updated_at=now,
        calendar_id=conn.id,
    )


async def set_target(session: AsyncSession, conn: CalendarConnection, *, now: datetime) -> None:
    """Create, switch on or off the connection's push target; a target switched on gets the
    resource's current holding bookings queued (their latest event), ending from now on."""
    target = await session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.calendar_id == conn.id, WebhookEndpoint.deleted_at.is_(None)
        )
    )
    if target is None:
        if not conn.push:
            return
        target = calendar_target(
            conn, now=now, events=["booking.*"], description="calendar push", enabled=False
        )
        session.add(target)
        await session.flush()
    switched_on = conn.push and not target.enabled
    target.url, target.enabled, target.updated_at = conn.url, conn.push, now
    if switched_on:
        await _backfill(session, conn, target, now=now)


async def _backfill(
    session: AsyncSession, conn: CalendarConnection, target: WebhookEndpoint, *, now: datetime
) -> None:
    later = aliased(Event)
    latest = (
        select(func.max(later.seq))
        .where(later.booking_id == BookingHold.booking_id)
        .correlate(BookingHold)
        .scalar_subquery()
    )
    events = (
        await session.scalars(
            select(Event)
            .options(load_only(Event.id, Event.seq, Event.booking_id))
            .select_from(BookingHold)
            .join(Booking, Booking.id == BookingHold.booking_id)
            .join(Event, Event.seq == latest)
            .where(
                BookingHold.resource_id == conn.resource_id,
                BookingHold.active.is_(True),
                Booking.end_time > now,
            )
            .order_by(Booking.start_time)
            .limit(BACKFILL_MAX)
        )
    ).all()
    have = set(
        await session.scalars(
            select(Delivery.event_id).where(
                Delivery.endpoint_id == target.id, Delivery.event_id.in_([e.id for e in events])
            )
        )
    )
    session.add_all(new_delivery(target, e, now) for e in events if e.id not in have)


async def stop_target(
    session: AsyncSession, conn: CalendarConnection, *, now: datetime, keep: bool = False
) -> uuid.UUID | None:
    """Disconnecting: the target stops (its pending pushes are never sent); its log stays. It
    lets go of the connection, or, `keep`, stays tied to the hidden connection until its
    removal ends (which waits for its pushes in flight: calendar_removals.py). Returns its id."""
    target = await session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.calendar_id == conn.id, WebhookEndpoint.deleted_at.is_(None)
        )
    )
    if target is None:
        return None
    target.enabled, target.deleted_at, target.updated_at = False, now, now
    if not keep:
        target.calendar_id = None
    target.description = f"calendar push (disconnected from resource {conn.resource_id})"
    return target.id


async def push_target(
    session: AsyncSession,
    *,
    calendar_id: uuid.UUID,
    encryption_key: str | None,
    removal: bool = False,
) -> PushTarget | None:
    """Where a claimed push (or, `removal`, a disconnect's removal) goes, read at send time.
    None: disconnected meanwhile (a push claimed before a disconnect and read after it is not
    sent: the removal may have listed the calendar already)."""
    async with session.begin():
        row = (
            await session.execute(
                select(CalendarConnection, Resource.feed_shows_details)
                .join(Resource, Resource.id == CalendarConnection.resource_id)
                .where(CalendarConnection.id == calendar_id)
            )
        ).first()
    if row is None or (row[0].disconnected_at is not None and not removal):
        return None
    conn, shows_details = row
    password = keys.decrypt(encryption_key, conn.password_encrypted)
    return PushTarget(
        account=remote.Account(conn.url, conn.username, password),
        app_id=conn.app_id,
        resource_id=conn.resource_id,
        shows_details=shows_details,
        connection_id=conn.id,
    )


async def push_state(
    session: AsyncSession, conn: CalendarConnection
) -> tuple[dict[str, int], DeliveryAttempt | None]:
    """Counts of the connection's pushes by status, and the latest attempt if it failed."""
    target_id = await session.scalar(
        select(WebhookEndpoint.id).where(
            WebhookEndpoint.calendar_id == conn.id, WebhookEndpoint.deleted_at.is_(None)
        )
    )
    if target_id is None:
        return {}, None
    counts = {
        status: n
        for status, n in await session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.endpoint_id == target_id)
            .group_by(Delivery.status)
        )
    }
    latest = await session.scalar(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.endpoint_id == target_id)
        .order_by(DeliveryAttempt.at.desc(), DeliveryAttempt.id.desc())
        .limit(1)
    )
    return counts, latest if latest is not None and latest.error else None
