"""Changing a booking: graph actions and modifications."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db import queries
from slotgraph.db.models import Booking
from slotgraph.domain import availability as av
from slotgraph.domain.availability import rfc3339
from slotgraph.domain.customers import remind_at
from slotgraph.domain.graphs import GRAPHS, Graph, Occupies
from slotgraph.domain.rules import (
    check_cancel_window,
)
from slotgraph.errors import (
    NotModifiable,
    PaymentExpired,
    SlotgraphError,
    ValidationFailed,
)
from slotgraph.schemas import (
    ActionBody,
    BookingOut,
    BookingUpdate,
)
from slotgraph.services import customer_tokens
from slotgraph.services.bookings import lifecycle
from slotgraph.services.busy import rules_of
from slotgraph.services.common import IfMatch, Principal, check_version
from slotgraph.services.outbox import record_change

# What an update of a class (group_owner) changes on it alone: its seats keep their own.
_OWNER_ONLY = frozenset({"details", "meta", "locale"})


async def apply_action(
    session: AsyncSession,
    *,
    principal: Principal,
    booking_id: uuid.UUID,
    action: str,
    body: ActionBody,
    now: datetime,
    if_match: IfMatch = None,
) -> BookingOut:
    """Apply a graph action. A payment hold found overdue is timed out (and that is committed)."""
    error: SlotgraphError | None = None
    customer_tokens.check_booking(principal, booking_id)
    async with session.begin():
        booking, owner = await lifecycle.lock_for_change(session, principal.app_id, booking_id)
        check_version(principal, if_match=if_match, current=booking.version)
        await customer_tokens.check_change(session, principal, booking, action=action, now=now)
        graph = GRAPHS[booking.graph]
        settled = await lifecycle.apply_due_action(session, booking, owner, now=now)
        if settled == "timeout":
            assert booking.payment_due_at is not None  # a timeout needs a deadline
            error = PaymentExpired(
                f"The payment deadline {rfc3339(booking.payment_due_at)} has passed; "
                "the booking is now unpaid.",
                booking_status=booking.status,
            )
        elif settled is not None:
            error = lifecycle.invalid_action(graph, booking.status, action)
        else:
            transition = graph.transition(booking.status, action)
            if transition is None or transition.automatic:
                raise lifecycle.invalid_action(graph, booking.status, action)
            if action == "cancel_by_customer" and owner is not None:
                check_cancel_window(
                    start=booking.start_time, now=now, min_cancel_time=owner.min_cancel_time
                )
            if action == "pay" and body.payment_id is not None:
                booking.payment_id = body.payment_id
            await lifecycle.transition(
                session,
                booking,
                action,
                owner=owner,
                now=now,
                actor_key_id=principal.key_id,
                message=body.message,
            )
            if booking.graph == "group_owner" and not graph.holds_in(booking.status):
                await _cancel_seats(session, booking, now=now, actor_key_id=principal.key_id)
        result = await customer_tokens.shown(session, principal, booking, now=now)
    if error is not None:
        raise error
    return result


async def modify_booking(
    session: AsyncSession,
    *,
    principal: Principal,
    booking_id: uuid.UUID,
    data: BookingUpdate,
    now: datetime,
    if_match: IfMatch = None,
) -> BookingOut:
    """Change time, resource, details, meta or locale. A new time or resource re-checks the
    slot."""
    changes = {
        k: v
        for k, v in data.model_dump(exclude_unset=True).items()
        if v is not None and k != "override_rules"
    }
    error: SlotgraphError | None = None
    customer_tokens.check_booking(principal, booking_id)
    asked = set(changes) | ({"override_rules"} if data.override_rules else set())
    async with session.begin():
        booking, owner = await lifecycle.lock_for_change(session, principal.app_id, booking_id)
        check_version(principal, if_match=if_match, current=booking.version)
        to = (
            changes.get("start_time", booking.start_time),
            changes.get("end_time", booking.end_time),
        )
        await customer_tokens.check_change(
            session, principal, booking, fields=asked, to=to, now=now
        )
        graph = GRAPHS[booking.graph]
        settled = await lifecycle.apply_due_action(session, booking, owner, now=now)
        if settled == "timeout":
            error = PaymentExpired("The payment deadline has passed; the booking is now unpaid.")
        elif settled is not None:
            error = NotModifiable(f"The booking is {booking.status}; it cannot be modified.")
        elif graph.is_final(booking.status):
            raise NotModifiable(
                f"The booking is {booking.status}; only bookings in a non-final state "
                "can be modified."
            )
        else:
            await _modify(
                session,
                booking,
                graph,
                changes,
                now=now,
                actor=principal.key_id,
                override_rules=data.override_rules,
            )
        result = await customer_tokens.shown(session, principal, booking, now=now)
    if error is not None:
        raise error
    return result


async def _modify(
    session: AsyncSession,
    booking: Booking,
    graph: Graph,
    changes: dict[str, object],
    *,
    now: datetime,
    actor: uuid.UUID | None,
    override_rules: bool,
) -> None:
    span_fields = {"resource_id", "start_time", "end_time"} & changes.keys()
    if graph.occupies is Occupies.SEAT and span_fields:
        raise ValidationFailed(
            [(f, "a seat takes its time and resource from its class") for f in sorted(span_fields)]
        )
    start = changes.get("start_time", booking.start_time)
    end = changes.get("end_time", booking.end_time)
    resource_id = changes.get("resource_id", booking.resource_id)
    assert isinstance(start, datetime)
    assert isinstance(end, datetime)
    assert isinstance(resource_id, uuid.UUID)
    if end <= start:
        field = "end_time" if "end_time" in changes else "start_time"
        raise ValidationFailed.one(field, "end_time must be after start_time")
    moved = (start, end, resource_id) != (booking.start_time, booking.end_time, booking.resource_id)
    length_kept = end - start == booking.end_time - booking.start_time
    changed = [
        f
        for f in ("resource_id", "start_time", "end_time", "details", "meta", "locale")
        if f in changes and changes[f] != getattr(booking, f)
    ]
    if not changed:
        return
    for field in changed:
        setattr(booking, field, changes[field])
    if moved:
        if booking.resource_ids and "resource_id" in changed:
            raise ValidationFailed.one(
                "resource_id", "this booking holds several resources; cancel and book again"
            )
        holds = graph.holds_in(booking.status)
        resources = await lifecycle.lock_bookable(
            session, booking.app_id, lifecycle.held_resource_ids(booking), will_hold=holds
        )
        if not override_rules:
            for r in resources:
                av.check_booking(
                    rules_of(r), start=start, end=end, now=now, length_kept=length_kept
                )
        await lifecycle.replace_holds(session, booking, resources, active=holds, now=now)
        booking.remind_at = remind_at(start=start, reminder=booking.reminder, now=now)
    booking.version += 1
    booking.updated_at = now
    await record_change(
        session,
        booking,
        action="update",
        from_status=booking.status,
        now=now,
        actor_key_id=actor,
        meta={"changed": changed, **({"override_rules": True} if override_rules else {})},
        event_type="booking.updated",
    )
    if moved and booking.graph == "group_owner":
        seats = await session.scalars(
            select(Booking.id).where(Booking.owner_booking_id == booking.id)
        )
        for seat in await queries.lock_bookings(session, list(seats)):
            seat.start_time, seat.end_time, seat.resource_id = start, end, resource_id
            seat.version += 1
            seat.updated_at = now
            if GRAPHS[seat.graph].holds_in(seat.status):
                await record_change(
                    session,
                    seat,
                    action="update",
                    from_status=seat.status,
                    now=now,
                    actor_key_id=actor,
                    meta={"changed": [f for f in changed if f not in _OWNER_ONLY]},
                    event_type="booking.updated",
                )


async def _cancel_seats(
    session: AsyncSession, owner: Booking, *, now: datetime, actor_key_id: uuid.UUID | None
) -> None:
    """The class is off: every seat still held goes to cancelled_by_owner, in this transaction."""
    seat_ids = await session.scalars(select(Booking.id).where(Booking.owner_booking_id == owner.id))
    for seat in await queries.lock_bookings(session, list(seat_ids)):
        if GRAPHS[seat.graph].holds_in(seat.status):
            await lifecycle.transition(
                session,
                seat,
                "cancel_by_owner",
                owner=owner,
                now=now,
                actor_key_id=actor_key_id,
                message="The class was cancelled.",
            )
