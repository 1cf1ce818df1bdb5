"""Reading the event log (the outbox)."""

from __future__ import annotations

import uuid
from datetime import datetime

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import Event
from slotgraph.errors import BadRequest, NotFound
from slotgraph.schemas import Page
from slotgraph.services.common import Principal
from slotgraph.webhook_schemas import EventOut


def parse_payload(payload: str) -> dict[str, object]:
    value = orjson.loads(payload)
    assert isinstance(value, dict)
    return value


def event_out(e: Event) -> EventOut:
    return EventOut(
        event_id=e.id,
        type=e.type,
        booking_id=e.booking_id,
        created_at=e.created_at,
        request_id=e.request_id,
        payload=parse_payload(e.payload),
    )


async def list_events(
    session: AsyncSession,
    *,
    principal: Principal,
    type_: list[str],
    booking_id: uuid.UUID | None,
    from_: datetime | None,
    to: datetime | None,
    limit: int,
    cursor: str | None,
) -> Page[EventOut]:
    """Events in the order they happened; `cursor` continues after the last one seen."""
    stmt = select(Event).where(Event.app_id == principal.app_id)
    if type_:
        stmt = stmt.where(Event.type.in_(type_))
    if booking_id is not None:
        stmt = stmt.where(Event.booking_id == booking_id)
    if from_ is not None:
        stmt = stmt.where(Event.created_at >= from_)
    if to is not None:
        stmt = stmt.where(Event.created_at < to)
    if cursor is not None:
        if not cursor.isdigit():
            raise BadRequest("cursor is not one this API returned")
        stmt = stmt.where(Event.seq > int(cursor))
    stmt = stmt.order_by(Event.seq).limit(limit + 1)
    async with session.begin():
        rows = list((await session.scalars(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[EventOut](
        data=[event_out(e) for e in rows], next_cursor=str(rows[-1].seq) if more else None
    )


async def get_event(
    session: AsyncSession, *, principal: Principal, event_id: uuid.UUID
) -> EventOut:
    async with session.begin():
        return event_out(await load_event(session, principal.app_id, event_id))


async def load_event(session: AsyncSession, app_id: uuid.UUID, event_id: uuid.UUID) -> Event:
    """The app's event `event_id`; another app's is NotFound like a missing one."""
    event = await session.scalar(select(Event).where(Event.id == event_id, Event.app_id == app_id))
    if event is None:
        raise NotFound(f"No event {event_id}.")
    return event
