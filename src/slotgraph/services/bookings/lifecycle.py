"""The state machine of a booking, its automatic actions, and what it holds.

Everything here runs inside the caller's transaction, with the caller holding the row locks.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.bounds import MAX_BOOKING_LENGTH
from slotgraph.db import driver_sql, queries
from slotgraph.db.models import BOOKING_HOLDS, Booking, BookingHold, new_id
from slotgraph.db.queries import ResourceRow
from slotgraph.domain import availability as av
from slotgraph.domain.graphs import GRAPHS, SEAT_GRAPHS, Graph, Occupies
from slotgraph.domain.rules import due_timer, payment_overdue
from slotgraph.errors import (
    InvalidAction,
    NotFound,
    ResourceArchived,
    SlotUnavailable,
    ValidationFailed,
)
from slotgraph.services.busy import rules_of
from slotgraph.services.outbox import record_change


async def transition(
    session: AsyncSession,
    booking: Booking,
    action: str,
    *,
    owner: Booking | None,
    now: datetime,
    actor_key_id: uuid.UUID | None,
    message: str | None = None,
) -> None:
    """Move `booking` by `action` and keep what it holds in step. Caller holds the row locks."""
    graph = GRAPHS[booking.graph]
    step = graph.transition(booking.status, action)
    if step is None:
        raise invalid_action(graph, booking.status, action)
    before = booking.status
    held_before, holds_after = graph.holds_in(before), graph.holds_in(step.to)
    if graph.occupies is Occupies.SLOT and held_before != holds_after:
        if holds_after:  # e.g. confirm: take the slot now, with the resources' current buffers
            resources = await lock_bookable(
                session, booking.app_id, held_resource_ids(booking), will_hold=True
            )
            await replace_holds(session, booking, resources, active=True, now=now)
        else:
            await session.execute(
                update(BookingHold).where(BookingHold.booking_id == booking.id).values(active=False)
            )
    if graph.occupies is Occupies.SEAT and held_before and not holds_after:
        assert owner is not None
        assert owner.seats_taken is not None
        owner.seats_taken -= 1
    booking.status = step.to
    booking.version += 1
    booking.updated_at = now
    await record_change(
        session,
        booking,
        action=action,
        from_status=before,
        now=now,
        actor_key_id=actor_key_id,
        message=message,
    )


async def check_free(
    session: AsyncSession,
    resource_id: uuid.UUID,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    exclude: uuid.UUID | None,
    settle: bool = True,
) -> None:
    """Raise SlotUnavailable if an active hold overlaps; overdue payment holds are timed out.

    On SQLite this check is the guarantee between bookings (the transaction holds the write
    lock). On PostgreSQL it gives a clean answer in the common case; the exclusion constraint
    decides any race. Against blocks, a trigger on both backends backs it up (ADR 0007).

    `settle=False` (no lock held: what the constraint refused, explained): overdue payment
    holds are left as they are, and only a hold that blocks regardless raises.
    """
    rows = await queries.overlapping_holds(
        session, resource_id, start, end, exclude_booking_id=exclude
    )
    overdue = [
        r.id
        for r in rows
        if payment_overdue(status=r.status, payment_due_at=r.payment_due_at, now=now)
    ]
    blocking = len(rows) - len(overdue)
    for stale in await queries.lock_bookings(session, overdue if settle else []):
        if await apply_due_action(session, stale, None, now=now) is None:
            blocking += 1  # paid (or cancelled) meanwhile; re-counted conservatively
    if blocking and any(r.id is None for r in rows):  # a hold without a booking is a block
        raise SlotUnavailable("The resource is blocked (busy time) for (part of) this time.")
    if blocking:
        raise SlotUnavailable("The resource is already booked for (part of) this time.")


# A hold: its resource, and its time with the resource's buffers.
Span = tuple[uuid.UUID, datetime, datetime]


class RefusedByConstraint(SlotUnavailable):
    """PostgreSQL's exclusion constraint refused a hold; `holds`: the holds being written."""

    def __init__(self, detail: str, holds: Sequence[Span] = ()) -> None:
        super().__init__(detail)
        self.holds = tuple(holds)


@asynccontextmanager
async def slot_guard(holds: Sequence[queries.NewRow] = ()) -> AsyncIterator[None]:
    """Turn PostgreSQL's exclusion violation (23P01) into 409 slot_unavailable; `holds`: the
    hold rows being written, which the refusal names."""
    try:
        yield
    except DBAPIError as exc:
        if queries.is_exclusion_violation(exc):
            raise RefusedByConstraint(
                "The resource is already booked for (part of) this time.",
                [(h["resource_id"], h["start_time"], h["end_time"]) for _, h in holds],
            ) from exc
        raise


def due_action(booking: Booking, now: datetime) -> str | None:
    """The automatic action due on this booking now (a timer of its graph), if any."""
    timer = due_timer(GRAPHS[booking.graph], booking, now, automatic=True)
    return timer.action if timer is not None else None


async def apply_due_action(
    session: AsyncSession,
    booking: Booking,
    owner: Booking | None,
    *,
    now: datetime,
    automatic: bool = True,
) -> str | None:
    """Apply the action of the timer due on a locked booking; returns it, or None if none was
    due. `automatic`: only timers whose action is automatic (what a request applies)."""
    timer = due_timer(GRAPHS[booking.graph], booking, now, automatic=automatic)
    if timer is None:
        return None
    if booking.owner_booking_id is not None and owner is None:
        (owner,) = await queries.lock_bookings(session, [booking.owner_booking_id])
    await transition(
        session,
        booking,
        timer.action,
        owner=owner,
        now=now,
        actor_key_id=None,
        message=timer.message,
    )
    return timer.action


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def invalid_action(graph: Graph, state: str, action: str) -> InvalidAction:
    allowed = graph.manual_actions(state)
    return InvalidAction(
        f"Action {action!r} is not allowed on {_article(graph.name)} {graph.name} booking in "
        f"state {state!r}; "
        + (f"allowed now: {', '.join(allowed)}." if allowed else "no action is allowed now."),
        booking_status=state,
        allowed_actions=allowed,
    )


async def load_booking(session: AsyncSession, app_id: uuid.UUID, booking_id: uuid.UUID) -> Booking:
    booking = await session.scalar(
        select(Booking).where(Booking.id == booking_id, Booking.app_id == app_id)
    )
    if booking is None:
        raise NotFound(f"No booking {booking_id}.")
    return booking


async def lock_for_change(
    session: AsyncSession, app_id: uuid.UUID, booking_id: uuid.UUID
) -> tuple[Booking, Booking | None]:
    """Lock a booking for a change; for a seat, lock its class first (the global lock order)."""
    locked = await _lock(session, app_id, booking_id, skip_locked=False)
    assert locked is not None
    return locked


async def lock_unless_held(
    session: AsyncSession, app_id: uuid.UUID, booking_id: uuid.UUID
) -> tuple[Booking, Booking | None] | None:
    """`lock_for_change`, or None at once if another transaction holds the booking or its
    class (PostgreSQL; SQLite's transaction already holds the whole file)."""
    return await _lock(session, app_id, booking_id, skip_locked=True)


async def _lock(
    session: AsyncSession, app_id: uuid.UUID, booking_id: uuid.UUID, *, skip_locked: bool
) -> tuple[Booking, Booking | None] | None:
    booking = await load_booking(session, app_id, booking_id)
    owner = None
    if booking.graph in SEAT_GRAPHS:
        assert booking.owner_booking_id is not None
        owners = await queries.lock_bookings(
            session, [booking.owner_booking_id], skip_locked=skip_locked
        )
        if not owners:
            return None
        (owner,) = owners
    locked = await queries.lock_bookings(session, [booking_id], skip_locked=skip_locked)
    return (locked[0], owner) if locked else None


def check_length(rules: av.Rules, length: timedelta) -> None:
    """A booking is at most MAX_BOOKING_LENGTH long, or the resource's max_duration if longer:
    a bound on the work it costs, kept even with override_rules."""
    longest = max(MAX_BOOKING_LENGTH, rules.max_duration or MAX_BOOKING_LENGTH)
    if length > longest:
        raise ValidationFailed.one(
            "end_time",
            f"a booking is at most {av.iso(longest)} long (the resource's max_duration, "
            f"or {av.iso(MAX_BOOKING_LENGTH)} without one)",
        )


async def new_hold(
    session: AsyncSession,
    booking_id: uuid.UUID,
    span: tuple[datetime, datetime],
    resource: ResourceRow,
    *,
    active: bool,
    now: datetime,
    check_overlap: bool = True,
    enforce_rules: bool = False,
) -> queries.NewRow:
    """The hold of booking `booking_id` over `span` (its start and end) on a locked resource:
    that time plus the resource's buffers.

    With `enforce_rules`, the booking must pass the resource's rules first. An active hold must
    be free (check_free), unless `check_overlap` is off because the exclusion constraint will
    decide; the caller writes it.
    """
    rules = rules_of(resource)
    booked_start, booked_end = span
    check_length(rules, booked_end - booked_start)
    if enforce_rules:
        av.check_booking(rules, start=booked_start, end=booked_end, now=now)
    start, end = rules.hold_span(booked_start, booked_end)
    if active and check_overlap:
        await check_free(session, resource.id, start, end, now=now, exclude=booking_id)
    hold = {
        "id": new_id(),
        "booking_id": booking_id,
        "block_id": None,
        "resource_id": resource.id,
        "start_time": start,
        "end_time": end,
        "active": active,
    }
    return BOOKING_HOLDS, hold


def held_resource_ids(booking: Booking) -> list[uuid.UUID]:
    if booking.resource_ids:
        return [uuid.UUID(i) for i in booking.resource_ids]
    return [booking.resource_id]


async def replace_holds(
    session: AsyncSession,
    booking: Booking,
    resources: list[ResourceRow],
    *,
    active: bool,
    now: datetime,
) -> None:
    """Replace a booking's holds (after a move, or when it starts holding)."""
    await session.execute(delete(BookingHold).where(BookingHold.booking_id == booking.id))
    span = (booking.start_time, booking.end_time)
    holds = [
        await new_hold(session, booking.id, span, r, active=active, now=now) for r in resources
    ]
    async with slot_guard():
        await queries.insert_rows(session, holds)


async def lock_bookable(
    session: AsyncSession,
    app_id: uuid.UUID,
    ids: Sequence[uuid.UUID],
    *,
    will_hold: bool,
    field: str = "resource_id",
    client_id: uuid.UUID | None = None,
    optimistic: driver_sql.Autocommit | None = None,
    probe: queries.Probe | None = None,
) -> list[ResourceRow]:
    """The resources in the given order, locked (queries.lock_resources), none archived.

    `will_hold`: the transaction will write active holds on them. `client_id`, if given, must exist
    too; it is checked first, in the same statement. `optimistic`: read on that connection with
    their version instead, for a write that checks it (queries.insert_rows). `probe`:
    queries.lock_resources.
    """
    found, client_ok = await queries.lock_resources(
        session,
        app_id,
        ids,
        hold=will_hold,
        client_id=client_id,
        optimistic=optimistic,
        probe=probe,
    )
    # Every unknown id at once: a person fixes them all in one go.
    errors = [] if client_ok else [("client_id", "no such client")]
    missing = [str(i) for i in dict.fromkeys(ids) if i not in found]
    if missing:
        errors.append((field, f"no such resource: {', '.join(missing)}"))
    if errors:
        raise ValidationFailed(errors)
    resources = []
    for resource_id in dict.fromkeys(ids):
        resource = found[resource_id]
        if resource.archived_at is not None:
            raise ResourceArchived(f"Resource {resource_id} is archived and takes no bookings.")
        resources.append(resource)
    return resources
