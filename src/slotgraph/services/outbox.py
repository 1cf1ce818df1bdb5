"""History and outbox rows, written in the caller's transaction (design.md invariant 4), and the
delivery rows that queue an outbox event for one target (services/deliveries.py sends them)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from slotgraph import logs, metrics
from slotgraph.db import driver_sql, queries
from slotgraph.db.models import (
    BOOKING_TRANSITIONS,
    EVENTS,
    Booking,
    Delivery,
    Event,
    NewBooking,
    WebhookEndpoint,
    new_id,
)
from slotgraph.domain.availability import rfc3339
from slotgraph.services.views import booking_out


async def record_change(
    session: AsyncSession,
    booking: Booking | NewBooking,
    *,
    action: str,
    from_status: str | None,
    now: datetime,
    actor_key_id: uuid.UUID | None,
    message: str | None = None,
    meta: dict[str, Any] | None = None,
    event_type: str | None = None,
    new_rows: Sequence[queries.NewRow] = (),
    unless_changed: queries.Unchanged | None = None,
    published: str | None = None,
    claim: queries.Claim | None = None,
    optimistic: driver_sql.Autocommit | None = None,
) -> None:
    """Write the history row and the event `booking.<status>` (or `event_type`) for a change.

    `new_rows` (a new booking and its holds) are written first, in the same round trip; with
    `unless_changed`, all of it or nothing, and with `claim` only if the claim's row is written
    too (queries.insert_rows). `published`: booking_out(booking) as JSON, if the caller has
    rendered it already (the create answers with the same text). `optimistic`: the connection
    of the optimistic create, where the one statement commits by itself (so it is counted
    here, not at the session's commit).
    """
    if published is None:
        published = booking_out(booking, now=now).model_dump_json()
    transition = {
        "id": new_id(),
        "booking_id": booking.id,
        "from_status": from_status,
        "action": action,
        "to_status": booking.status,
        "at": now,
        "message": message,
        "actor_key_id": actor_key_id,
        "meta": meta or {},
    }
    event = new_event(
        app_id=booking.app_id,
        type_=event_type or f"booking.{booking.status}",
        booking_id=booking.id,
        data={
            "booking": orjson.Fragment(published),
            "previous_status": from_status,
            "action": action,
            "message": message,
        },
        now=now,
    )
    await queries.insert_rows(
        session,
        [*new_rows, (BOOKING_TRANSITIONS, transition), (EVENTS, event)],
        unless_changed=unless_changed,
        claim=claim,
        optimistic=optimistic,
    )
    if optimistic is not None:  # committed
        metrics.record_changes([(booking.graph, action)])
        return
    session.sync_session.info.setdefault("changes", []).append((booking.graph, action))


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    """Booking metrics count what was committed, not what was tried."""
    changes = session.info.pop("changes", None)
    if changes:
        metrics.record_changes(changes)


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, _previous: Any) -> None:
    session.info.pop("changes", None)


def record_event(
    session: AsyncSession,
    *,
    app_id: uuid.UUID,
    type_: str,
    booking_id: uuid.UUID | None,
    data: dict[str, Any],
    now: datetime,
) -> Event:
    """Add one outbox row to the session (written at its next flush)."""
    event = Event(
        **new_event(app_id=app_id, type_=type_, booking_id=booking_id, data=data, now=now)
    )
    session.add(event)
    return event


def new_event(
    *,
    app_id: uuid.UUID,
    type_: str,
    booking_id: uuid.UUID | None,
    data: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """One outbox row's values. The payload is serialised here, once: a resend sends these
    bytes."""
    event_id = new_id()
    payload = orjson.dumps(
        {"id": str(event_id), "type": type_, "timestamp": rfc3339(now), "data": data}
    )
    return {
        "id": event_id,
        "app_id": app_id,
        "type": type_,
        "booking_id": booking_id,
        "payload": payload.decode(),
        "created_at": now,
        "dispatched_at": None,
        "request_id": logs.request_id.get(),
    }


class OutboxEvent(Protocol):
    """What the fan-out reads of an event: an `Event`, or a row of its columns."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def seq(self) -> int: ...
    @property
    def app_id(self) -> uuid.UUID: ...
    @property
    def type(self) -> str: ...
    @property
    def booking_id(self) -> uuid.UUID | None: ...
    @property
    def payload(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...


class Target(Protocol):
    """What the fan-out reads of a delivery target: a `WebhookEndpoint`, or a row of its
    columns."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def app_id(self) -> uuid.UUID: ...
    @property
    def events(self) -> list[str] | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def format(self) -> str: ...
    @property
    def calendar_id(self) -> uuid.UUID | None: ...


def new_delivery(endpoint: WebhookEndpoint, event: Event, now: datetime) -> Delivery:
    """`event` queued for `endpoint` (a webhook, an email or a calendar push target), due now."""
    return Delivery(**delivery_row(endpoint, event, now))


def delivery_row(endpoint: Target, event: OutboxEvent, now: datetime) -> dict[str, object]:
    """new_delivery's values, for an INSERT of many (the dispatch)."""
    return {
        "id": new_id(),
        "app_id": endpoint.app_id,
        "endpoint_id": endpoint.id,
        "event_id": event.id,
        "event_seq": event.seq,
        "booking_id": event.booking_id,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
