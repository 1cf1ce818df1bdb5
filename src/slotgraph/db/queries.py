"""Named queries: the ones that are reused or not obvious."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Row, or_, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import Booking, BookingHold


async def overlapping_holds(
    session: AsyncSession,
    resource_id: uuid.UUID,
    start: datetime,
    end: datetime,
    *,
    exclude_booking_id: uuid.UUID | None = None,
) -> Sequence[Row[uuid.UUID | None, str | None, datetime | None]]:
    """Active holds on `resource_id` overlapping `[start, end)`: (booking_id, status, due).

    A block of time off has no booking: (None, None, None).
    """
    stmt = (
        select(BookingHold.booking_id.label("id"), Booking.status, Booking.payment_due_at)
        .select_from(BookingHold)
        .outerjoin(Booking, BookingHold.booking_id == Booking.id)
        .where(
            BookingHold.resource_id == resource_id,
            BookingHold.active.is_(True),
            BookingHold.start_time < end,
            BookingHold.end_time > start,
        )
    )
    if exclude_booking_id is not None:
        # (a block's hold has no booking: NULL != x is not true, so say it explicitly)
        stmt = stmt.where(
            or_(BookingHold.booking_id.is_(None), BookingHold.booking_id != exclude_booking_id)
        )
    return (await session.execute(stmt)).all()


async def lock_bookings(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[Booking]:
    """Load bookings with a row lock, in id order (a fixed order cannot deadlock).

    `populate_existing` refreshes objects already in the session with the locked row's values.
    On SQLite FOR UPDATE is not rendered; there the whole transaction already holds the lock.
    """
    if not ids:
        return []
    stmt = (
        select(Booking)
        .where(Booking.id.in_(sorted(set(ids))))
        .order_by(Booking.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(stmt)).all())


def is_exclusion_violation(exc: DBAPIError) -> bool:
    """True for PostgreSQL SQLSTATE 23P01 (exclusion_violation), whichever driver raised it."""
    orig = exc.orig
    for candidate in (orig, getattr(orig, "__cause__", None)):
        if getattr(candidate, "sqlstate", None) == "23P01":
            return True
    return False


async def lock_resources(session: AsyncSession, ids: Iterable[uuid.UUID]) -> None:
    """Serialise the transactions that take time on these resources (PostgreSQL).

    Without it, two transactions inserting overlapping holds at once can each wait for the other
    inside the exclusion constraint's check, and PostgreSQL aborts one as a deadlock. Taking a
    transaction-level advisory lock per resource, in sorted order, before re-checking makes the
    check exact and the waits acyclic. Freeing time (cancel, timeout) needs no lock. SQLite needs
    none: BEGIN IMMEDIATE already serialises writers.
    """
    bind = session.bind
    if bind is None or bind.dialect.name != "postgresql":
        return
    for resource_id in sorted(set(ids)):
        key = int.from_bytes(resource_id.bytes[8:], "big", signed=True)
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
