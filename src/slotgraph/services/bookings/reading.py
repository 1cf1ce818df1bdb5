"""Reading bookings. A read applies the automatic actions that are due first."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import Booking, BookingTransition
from slotgraph.errors import ValidationFailed
from slotgraph.schemas import (
    BookingOut,
    Page,
    TransitionOut,
)
from slotgraph.services import customer_tokens
from slotgraph.services.bookings import lifecycle, timers
from slotgraph.services.common import Principal, decode_cursor, encode_cursor
from slotgraph.services.views import booking_out, transition_out


async def get_booking(
    session: AsyncSession, *, principal: Principal, booking_id: uuid.UUID, now: datetime
) -> BookingOut:
    customer_tokens.check_booking(principal, booking_id)
    async with session.begin():
        booking = await current(session, principal.app_id, booking_id, now=now)
        return await customer_tokens.shown(session, principal, booking, now=now)


async def current(
    session: AsyncSession, app_id: uuid.UUID, booking_id: uuid.UUID, *, now: datetime
) -> Booking:
    """The booking as every read shows it: the automatic action due on it (a timer of its
    graph) applied first, in the caller's transaction, unless another transaction holds it
    (a request changing it): then as it stands, without waiting for the lock (what the holder
    commits decides; the next read or the worker applies the timer). `get_booking`, the manage
    page (services/page_manage.py) and a booking page's replayed form (services/page_once.py)
    read it so."""
    booking = await lifecycle.load_booking(session, app_id, booking_id)
    if lifecycle.due_action(booking, now):
        locked = await lifecycle.lock_unless_held(session, app_id, booking_id)
        if locked is not None:
            booking, owner = locked
            await lifecycle.apply_due_action(session, booking, owner, now=now)
    return booking


async def list_bookings(
    session: AsyncSession,
    *,
    principal: Principal,
    now: datetime,
    resource_id: uuid.UUID | None = None,
    client_id: uuid.UUID | None = None,
    owner_booking_id: uuid.UUID | None = None,
    status: Sequence[str] = (),
    graph: Sequence[str] = (),
    from_: datetime | None = None,
    to: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[BookingOut]:
    """Bookings overlapping [from, to), sorted by start time, one page at a time."""
    stmt = select(Booking).where(Booking.app_id == principal.app_id)
    if resource_id is not None:
        stmt = stmt.where(Booking.resource_id == resource_id)
    if client_id is not None:
        stmt = stmt.where(Booking.client_id == client_id)
    if owner_booking_id is not None:
        stmt = stmt.where(Booking.owner_booking_id == owner_booking_id)
    if status:
        stmt = stmt.where(Booking.status.in_(status))
    if graph:
        stmt = stmt.where(Booking.graph.in_(graph))
    if from_ is not None:
        stmt = stmt.where(Booking.end_time > from_)
    if to is not None:
        stmt = stmt.where(Booking.start_time < to)
    if cursor is not None:
        at, id_ = decode_cursor(cursor)
        stmt = stmt.where(tuple_(Booking.start_time, Booking.id) > tuple_(at, id_))
    stmt = stmt.order_by(Booking.start_time, Booking.id).limit(limit + 1)
    async with session.begin():
        await timers.apply_all_due(session, now=now, app_id=principal.app_id)
        rows = list((await session.scalars(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].start_time, rows[-1].id) if more else None
    return Page[BookingOut](data=[booking_out(b, now=now) for b in rows], next_cursor=next_cursor)


# A booking's history answer holds its latest changes, at most this many, oldest first. Every
# change writes a row and nothing bounded them (a customer token may move its booking at the
# public rate, 600 a minute): the answer grew with them (2,000 changes: 368 KB). Older ones are
# read a page at a time with `before` (the oldest change of the page before).
MAX_HISTORY = 1_000


async def booking_history(
    session: AsyncSession,
    *,
    principal: Principal,
    booking_id: uuid.UUID,
    before: uuid.UUID | None = None,
) -> tuple[list[TransitionOut], bool]:
    """The latest MAX_HISTORY changes (made before the change `before`, when given), oldest
    first, and whether older ones were left out. A `before` that is not a change of this booking
    is 422."""
    # Several changes may share one clock reading: the creation sorts first among them, then
    # the ids (UUIDv7, increasing) keep them in the order they were made.
    order = (
        BookingTransition.at,
        BookingTransition.from_status.is_not(None),
        BookingTransition.id,
    )
    async with session.begin():
        await lifecycle.load_booking(session, principal.app_id, booking_id)
        stmt = select(BookingTransition).where(BookingTransition.booking_id == booking_id)
        if before is not None:
            stmt = stmt.where(await _older_than(session, booking_id, before))
        rows = (
            await session.scalars(
                # Newest first, then turned around; one more: whether any were left out.
                stmt.order_by(*(c.desc() for c in order)).limit(MAX_HISTORY + 1)
            )
        ).all()
    kept = rows[:MAX_HISTORY]
    return [transition_out(t) for t in reversed(kept)], len(rows) > MAX_HISTORY


async def _older_than(
    session: AsyncSession, booking_id: uuid.UUID, change_id: uuid.UUID
) -> ColumnElement[bool]:
    """The changes of this booking made before the change `change_id`, in the history's order."""
    cursor = await session.get(BookingTransition, change_id)
    if cursor is None or cursor.booking_id != booking_id:
        raise ValidationFailed.one(
            "before", f"No change {change_id} in this booking's history.", where="query"
        )
    t = BookingTransition
    created = t.from_status.is_(None)
    if cursor.from_status is None:  # the creation: only creations sort before it at its time
        same_time = and_(created, t.id < cursor.id)
    else:
        same_time = or_(created, t.id < cursor.id)
    return or_(t.at < cursor.at, and_(t.at == cursor.at, same_time))
