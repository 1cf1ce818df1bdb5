"""History and outbox rows, written in the caller's transaction (design.md invariant 4)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import Booking, BookingTransition, Event, new_id
from slotgraph.services.views import booking_out


def record_change(
    session: AsyncSession,
    booking: Booking,
    *,
    action: str,
    from_status: str | None,
    now: datetime,
    actor_key_id: uuid.UUID | None,
    message: str | None = None,
    meta: dict[str, Any] | None = None,
    event_type: str | None = None,
) -> None:
    """Write the history row and the event `booking.<status>` (or `event_type`) for a change."""
    session.add(
        BookingTransition(
            booking_id=booking.id,
            from_status=from_status,
            action=action,
            to_status=booking.status,
            at=now,
            message=message,
            actor_key_id=actor_key_id,
            meta=meta or {},
        )
    )
    record_event(
        session,
        app_id=booking.app_id,
        type_=event_type or f"booking.{booking.status}",
        booking_id=booking.id,
        data={
            "booking": booking_out(booking).model_dump(mode="json"),
            "previous_status": from_status,
            "action": action,
            "message": message,
        },
        now=now,
    )


def record_event(
    session: AsyncSession,
    *,
    app_id: uuid.UUID,
    type_: str,
    booking_id: uuid.UUID | None,
    data: dict[str, Any],
    now: datetime,
) -> Event:
    """Write one outbox row. The payload is serialised here, once: a resend sends these bytes."""
    event_id = new_id()
    payload = orjson.dumps(
        {"id": str(event_id), "type": type_, "timestamp": now.isoformat(), "data": data}
    )
    event = Event(
        id=event_id,
        app_id=app_id,
        type=type_,
        booking_id=booking_id,
        payload=payload.decode(),
        created_at=now,
    )
    session.add(event)
    return event
