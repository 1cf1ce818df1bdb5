"""The reminder timer: a booking whose `remind_at` has come emits `booking.reminder`.

`remind_at` is set when a booking is made or moved (start minus its `reminder`, when that is
still ahead: domain/customers.py) and cleared here, in the transaction that writes the event, so
each time of a booking is reminded at most once. The event goes through the outbox like any
other: the email channel sends the customer's reminder, and webhooks subscribed to `booking.*`
get it too. A booking that no longer holds its slot, or has started, is not reminded.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db import queries
from slotgraph.db.models import Booking
from slotgraph.domain.graphs import GRAPHS
from slotgraph.notifications.kinds import REMINDER_EVENT
from slotgraph.services.outbox import record_event
from slotgraph.services.views import booking_out


async def send_due(session: AsyncSession, *, now: datetime, limit: int = 500) -> int:
    """Emit the reminders due now (at most `limit`); returns how many were emitted."""
    async with session.begin():
        due = list(
            await session.scalars(
                select(Booking.id)
                .where(Booking.remind_at.is_not(None), Booking.remind_at <= now)
                .order_by(Booking.remind_at)
                .limit(limit)
            )
        )
        sent = 0
        for booking in await queries.lock_bookings(session, due):
            if booking.remind_at is None or booking.remind_at > now:
                continue  # reminded or moved meanwhile
            booking.remind_at = None
            if not GRAPHS[booking.graph].holds_in(booking.status) or booking.start_time <= now:
                continue
            record_event(
                session,
                app_id=booking.app_id,
                type_=REMINDER_EVENT,
                booking_id=booking.id,
                data={
                    "booking": booking_out(booking, now=now).model_dump(mode="json"),
                    "previous_status": booking.status,
                    "action": "remind",
                    "message": None,
                },
                now=now,
            )
            sent += 1
        return sent
