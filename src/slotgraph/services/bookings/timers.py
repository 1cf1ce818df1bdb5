"""The worker's timers: due timeouts and expiries, and auto-complete."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db import queries
from slotgraph.db.models import Booking
from slotgraph.domain.graphs import GRAPHS
from slotgraph.domain.rules import payment_overdue_sql
from slotgraph.services.bookings import lifecycle

AUTO_COMPLETE_AFTER = timedelta(hours=1)


async def run_timers(session: AsyncSession, *, now: datetime, limit: int = 500) -> int:
    """The worker's timers, all apps: due `timeout` and `expire`, then `complete` one hour after
    the end of confirmed and paid bookings. Returns how many bookings moved."""
    async with session.begin():
        moved = await apply_all_due(session, now=now, app_id=None, limit=limit)
        rows = (
            await session.execute(
                select(Booking.id, Booking.owner_booking_id)
                .where(
                    Booking.status.in_(("confirmed", "paid")),
                    Booking.auto_complete.is_(True),
                    Booking.end_time <= now - AUTO_COMPLETE_AFTER,
                )
                .order_by(Booking.end_time)
                .limit(limit)
            )
        ).all()
        owners, locked = await lock_with_owners(session, rows)
        for booking in locked:
            transition = GRAPHS[booking.graph].transition(booking.status, "complete")
            if transition is None or not booking.auto_complete:
                continue  # changed while we waited for the lock
            owner = owners.get(booking.owner_booking_id) if booking.owner_booking_id else None
            await lifecycle.transition(
                session,
                booking,
                "complete",
                owner=owner,
                now=now,
                actor_key_id=None,
                message="Completed automatically one hour after the end.",
            )
            moved += 1
    return moved


async def apply_all_due(
    session: AsyncSession, *, now: datetime, app_id: uuid.UUID | None, limit: int = 500
) -> int:
    """Apply every due automatic action (of one app, or all). Returns how many moved."""
    payment = select(Booking.id, Booking.owner_booking_id).where(payment_overdue_sql(Booking, now))
    requests = select(Booking.id, Booking.owner_booking_id).where(
        Booking.status == "tentative",
        Booking.graph == "confirm_decline",
        Booking.start_time <= now,
    )
    if app_id is not None:
        payment = payment.where(Booking.app_id == app_id)
        requests = requests.where(Booking.app_id == app_id)
    due = [
        *(await session.execute(payment.limit(limit))).all(),
        *(await session.execute(requests.limit(limit))).all(),
    ]
    owners, locked = await lock_with_owners(session, due)
    moved = 0
    for booking in locked:
        owner = owners.get(booking.owner_booking_id) if booking.owner_booking_id else None
        moved += await lifecycle.apply_due_action(session, booking, owner, now=now) is not None
    return moved


async def lock_with_owners(
    session: AsyncSession, rows: Sequence[Row[uuid.UUID, uuid.UUID | None]]
) -> tuple[dict[uuid.UUID, Booking], list[Booking]]:
    """Lock the classes of these bookings, then the bookings: the global lock order."""
    if not rows:
        return {}, []
    owner_ids = [r[1] for r in rows if r[1] is not None]
    owners = {o.id: o for o in await queries.lock_bookings(session, owner_ids)}
    return owners, await queries.lock_bookings(session, [r[0] for r in rows])
