"""Database rows -> the public JSON shapes of `slotgraph.schemas`."""

from __future__ import annotations

import uuid
from datetime import datetime

import orjson

from slotgraph.db.models import (
    Booking,
    BookingTransition,
    Client,
    NewBooking,
    Resource,
    WebhookEndpoint,
)
from slotgraph.domain.customers import Notices, customer_actions
from slotgraph.domain.graphs import GRAPHS
from slotgraph.domain.rules import actions_now
from slotgraph.schemas import BookingOut, ClientOut, ResourceOut, TransitionOut
from slotgraph.services.common import Principal
from slotgraph.webhook_schemas import WebhookOut


def resource_out(r: Resource) -> ResourceOut:
    return ResourceOut(
        resource_id=r.id,
        name=r.name,
        kind=r.kind,
        timezone=r.timezone,
        location=r.location,
        email=r.email,
        meta=r.meta,
        weekly_hours=r.weekly_hours,
        exceptions=r.exceptions,
        buffer_before=r.buffer_before,
        buffer_after=r.buffer_after,
        min_notice=r.min_notice,
        max_advance=r.max_advance,
        min_duration=r.min_duration,
        max_duration=r.max_duration,
        slot_step=r.slot_step,
        feed_shows_details=r.feed_shows_details,
        archived=r.archived_at is not None,
        archived_at=r.archived_at,
        version=r.version,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def client_out(c: Client) -> ClientOut:
    return ClientOut(
        client_id=c.id,
        name=c.name,
        email=c.email,
        phone=c.phone,
        timezone=c.timezone,
        meta=c.meta,
        version=c.version,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


def booking_out(b: Booking | NewBooking, *, now: datetime) -> BookingOut:
    """The booking as an answer shows it `now` (what actions it offers: `actions_now`)."""
    graph = GRAPHS[b.graph]
    seats_left = None
    if b.max_seats is not None and b.seats_taken is not None:
        seats_left = b.max_seats - b.seats_taken
    return BookingOut(
        booking_id=b.id,
        graph=b.graph,
        status=b.status,
        resource_id=b.resource_id,
        resource_ids=[uuid.UUID(r) for r in b.resource_ids] if b.resource_ids else [b.resource_id],
        client_id=b.client_id,
        start_time=b.start_time,
        end_time=b.end_time,
        details=b.details,
        meta=b.meta,
        available_actions=actions_now(graph, b, now),
        completed=graph.is_final(b.status),
        holds=graph.holds_in(b.status),
        payment_due_at=b.payment_due_at,
        payment_id=b.payment_id,
        max_seats=b.max_seats,
        seats_taken=b.seats_taken,
        seats_left=seats_left,
        min_cancel_time=b.min_cancel_time,
        min_booking_time=b.min_booking_time,
        max_booking_time=b.max_booking_time,
        owner_booking_id=b.owner_booking_id,
        auto_complete=b.auto_complete,
        notify=b.notify,
        reminder=b.reminder,
        locale=b.locale,
        version=b.version,
        created_at=b.created_at,
        updated_at=b.updated_at,
    )


def created_json(booking: str, customer_token: str | None) -> str:
    """A new booking's answer (`BookingCreated`, whose one more field comes last) from the JSON
    of its `BookingOut`, which its event carries too: the text `model_dump_json` gives, without
    rendering the booking a second time (tests/api/test_bookings.py compares the two)."""
    return f'{booking[:-1]},"customer_token":{orjson.dumps(customer_token).decode()}}}'


def booking_out_for(
    principal: Principal, b: Booking, *, now: datetime, notices: Notices
) -> BookingOut:
    """The booking as `principal` may see it: whole for an API key; for the booking's customer
    token (`ct_`), without what the app wrote for itself, and offering only the actions the
    token may apply now, its `notices` considered (docs/security.md). Services call it through
    customer_tokens.shown, which reads the notices."""
    out = booking_out(b, now=now)
    if principal.kind != "customer":
        return out
    made_on_page = b.page_id is not None  # a booking page stores the visitor's own answers
    fields = b.meta.get("fields") if made_on_page and b.meta else None
    return out.model_copy(
        update={
            "client_id": None,
            "meta": {"fields": fields} if fields is not None else {},
            "details": b.details if made_on_page else None,
            "available_actions": customer_actions(
                out.available_actions, start=b.start_time, now=now, notices=notices
            ),
        }
    )


def transition_out(t: BookingTransition) -> TransitionOut:
    return TransitionOut(
        change_id=t.id,
        from_status=t.from_status,
        action=t.action,
        to=t.to_status,
        at=t.at,
        message=t.message,
        actor_key_id=t.actor_key_id,
        meta=t.meta,
    )


def webhook_out(e: WebhookEndpoint) -> WebhookOut:
    return WebhookOut(
        webhook_id=e.id,
        url=e.url,
        events=e.events,
        format=e.format,
        description=e.description,
        enabled=e.enabled,
        disabled_reason=e.disabled_reason,
        version=e.version,
        created_at=e.created_at,
        updated_at=e.updated_at,
    )
