"""Bookings: create, read, modify, and move them through their graph.

Every function here owns one transaction. Locks are taken in one global order: a group_owner
booking (the class) before its seat bookings, and several bookings in id order; so no two
transactions can wait on each other in a cycle.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Row, delete, select, tuple_, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db import queries
from slotgraph.db.models import BOOKING_HOLDS, Booking, BookingHold, BookingTransition, new_id
from slotgraph.db.queries import ResourceRow
from slotgraph.domain import availability as av
from slotgraph.domain.graphs import GRAPHS, PAYMENT_GRAPHS, SEAT_GRAPHS, Graph, Holds
from slotgraph.domain.rules import (
    check_booking_window,
    check_cancel_window,
    payment_overdue,
    request_expired,
)
from slotgraph.domain.shape import booking_shape_errors
from slotgraph.errors import (
    Conflict,
    Forbidden,
    InvalidAction,
    NotFound,
    NotModifiable,
    PaymentExpired,
    ResourceArchived,
    SeatsFull,
    SlotgraphError,
    SlotUnavailable,
    ValidationFailed,
)
from slotgraph.schemas import (
    ActionBody,
    BookingCreate,
    BookingOut,
    BookingUpdate,
    Page,
    TransitionOut,
)
from slotgraph.services.availability import rules_of
from slotgraph.services.clients import find_or_create_customer, load_client
from slotgraph.services.common import Principal, decode_cursor, encode_cursor
from slotgraph.services.outbox import record_change
from slotgraph.services.views import booking_out, transition_out

DEFAULT_PAYMENT_TIMEOUT = timedelta(minutes=5)


# -- reading -------------------------------------------------------------------------------------


async def get_booking(
    session: AsyncSession, *, principal: Principal, booking_id: uuid.UUID, now: datetime
) -> BookingOut:
    async with session.begin():
        booking = await _load(session, principal.app_id, booking_id)
        if due_action(booking, now):
            booking, owner = await _lock_for_change(session, principal.app_id, booking_id)
            await _settle(session, booking, owner, now=now)
        return booking_out(booking)


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
        await _apply_due(session, now=now, app_id=principal.app_id)
        rows = list((await session.scalars(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].start_time, rows[-1].id) if more else None
    return Page[BookingOut](data=[booking_out(b) for b in rows], next_cursor=next_cursor)


async def booking_history(
    session: AsyncSession, *, principal: Principal, booking_id: uuid.UUID
) -> list[TransitionOut]:
    async with session.begin():
        await _load(session, principal.app_id, booking_id)
        rows = (
            await session.scalars(
                select(BookingTransition)
                .where(BookingTransition.booking_id == booking_id)
                .order_by(BookingTransition.at, BookingTransition.from_status.is_not(None))
            )
        ).all()
    return [transition_out(t) for t in rows]


# -- creating ------------------------------------------------------------------------------------


async def create_booking(
    session: AsyncSession, *, principal: Principal, data: BookingCreate, now: datetime
) -> BookingOut:
    """Validate, lock, check and write a new booking.

    The hot path of the API, so it is written for few round trips (ADR 0005): one statement
    locks the resource(s) and checks the client, and one writes the booking, its holds, its
    history row and its event. On PostgreSQL a single resource is not checked for overlaps
    first: the exclusion constraint is the check. When it refuses, the booking is tried once
    more with the check, which says why and times out unpaid holds past their deadline.
    """
    errors = booking_shape_errors(data.graph, dict(data))
    if errors:
        raise ValidationFailed(errors)
    if not queries.has_exclusion_constraint(session):
        return await _create(session, principal, data, now, precheck=True)
    try:
        return await _create(session, principal, data, now, precheck=False)
    except _Taken:
        return await _create(session, principal, data, now, precheck=True)


async def _create(
    session: AsyncSession,
    principal: Principal,
    data: BookingCreate,
    now: datetime,
    *,
    precheck: bool,
) -> BookingOut:
    graph = GRAPHS[data.graph]
    async with session.begin():
        booking = Booking(
            id=new_id(),
            app_id=principal.app_id,
            graph=graph.name,
            status=graph.initial,
            resource_ids=None,
            details=data.details,
            meta=data.meta,
            auto_complete=data.auto_complete,
            version=1,
            created_at=now,
            updated_at=now,
        )
        if graph.name in PAYMENT_GRAPHS:
            booking.payment_due_at = now + (data.payment_timeout or DEFAULT_PAYMENT_TIMEOUT)
        if data.customer is not None:
            client = await find_or_create_customer(
                session, app_id=principal.app_id, customer=data.customer, now=now
            )
            booking.client_id = client.id
        else:
            booking.client_id = data.client_id

        holds: list[queries.NewRow] = []
        if graph.holding is Holds.SEAT:
            assert data.owner_booking_id is not None
            if data.client_id is not None:
                await _check_client(session, principal.app_id, data.client_id)
            owner = await _take_seat(session, principal.app_id, data.owner_booking_id, now=now)
            booking.owner_booking_id = owner.id
            booking.resource_id = owner.resource_id
            booking.start_time = owner.start_time
            booking.end_time = owner.end_time
        else:
            assert data.start_time
            assert data.end_time
            booking.start_time = data.start_time
            booking.end_time = data.end_time
            if graph.name == "group_owner":
                booking.max_seats = data.max_seats
                booking.seats_taken = 0
                booking.min_cancel_time = data.min_cancel_time
                booking.min_booking_time = data.min_booking_time
                booking.max_booking_time = data.max_booking_time
            holds = await _place_new(session, principal, booking, data, now=now, precheck=precheck)
        async with slot_guard():
            shown = await record_change(
                session,
                booking,
                action="create",
                from_status=None,
                now=now,
                actor_key_id=principal.key_id,
                meta={"override_rules": True} if data.override_rules else None,
                new_rows=[queries.row_values(booking), *holds],
            )
        return shown


async def _place_new(
    session: AsyncSession,
    principal: Principal,
    booking: Booking,
    data: BookingCreate,
    *,
    now: datetime,
    precheck: bool,
) -> list[queries.NewRow]:
    """Choose the resource(s) of a new booking; return its holds, to be written by the caller.

    One resource: it must pass its rules and (if the initial state holds) be free. A pool
    (`resource_ids`): `in_order` and `least_busy` take the first candidate that passes and is
    free; `all` needs every one of them. Every candidate is locked first, so what the checks
    see cannot change before the commit. Without `precheck`, a single resource (or `all`) is
    not checked for overlaps here: the caller relies on the exclusion constraint.
    """
    if data.override_rules and principal.kind != "secret":
        raise Forbidden("override_rules needs the secret key.")
    ids = data.resource_ids or ([data.resource_id] if data.resource_id else [])
    active = GRAPHS[booking.graph].holds_in(booking.status)
    resources = await _lock_bookable(
        session,
        booking.app_id,
        ids,
        hold=active,
        field="resource_ids" if data.resource_ids else "resource_id",
        client_id=data.client_id,
    )
    booking.resource_id = resources[0].id
    check = not data.override_rules
    if data.resource_ids and data.assign == "all":
        booking.resource_ids = [str(r.id) for r in resources]
        for r in resources:
            if check:
                av.check_booking(
                    rules_of(r), start=booking.start_time, end=booking.end_time, now=now
                )
        return [
            await _new_hold(session, booking, r, active=active, now=now, check=precheck)
            for r in resources
        ]
    if data.resource_ids and data.assign == "least_busy":
        resources = await _least_busy_first(session, resources, booking.start_time)
    first_error: SlotgraphError | None = None
    for r in resources:
        try:
            hold = await _new_hold(
                session,
                booking,
                r,
                active=active,
                now=now,
                check_rules=check,
                check=precheck or len(resources) > 1,
            )
        except SlotgraphError as exc:
            if len(resources) == 1:
                raise
            if first_error is None or (
                isinstance(exc, SlotUnavailable) and not isinstance(first_error, SlotUnavailable)
            ):
                first_error = exc
            continue
        booking.resource_id = r.id
        return [hold]
    assert first_error is not None
    if isinstance(first_error, SlotUnavailable):
        raise SlotUnavailable("None of the resources in the pool is free for this time.")
    raise first_error


async def _new_hold(
    session: AsyncSession,
    booking: Booking,
    resource: ResourceRow,
    *,
    active: bool,
    now: datetime,
    check: bool = True,
    check_rules: bool = False,
) -> queries.NewRow:
    """The hold of `booking` on a locked resource: its time plus the resource's buffers.

    With `check_rules`, the booking must pass the resource's rules first. An active hold must
    be free (check_free, unless `check` is off); the caller writes it.
    """
    rules = rules_of(resource)
    if check_rules:
        av.check_booking(rules, start=booking.start_time, end=booking.end_time, now=now)
    start, end = rules.hold_span(booking.start_time, booking.end_time)
    if active and check:
        await check_free(session, resource.id, start, end, now=now, exclude=booking.id)
    hold = {
        "id": new_id(),
        "booking_id": booking.id,
        "block_id": None,
        "resource_id": resource.id,
        "start_time": start,
        "end_time": end,
        "active": active,
    }
    return BOOKING_HOLDS, hold


def _held_ids(booking: Booking) -> list[uuid.UUID]:
    if booking.resource_ids:
        return [uuid.UUID(i) for i in booking.resource_ids]
    return [booking.resource_id]


async def _rehold(
    session: AsyncSession,
    booking: Booking,
    resources: list[ResourceRow],
    *,
    active: bool,
    now: datetime,
) -> None:
    """Replace a booking's holds (after a move, or when it starts holding)."""
    await session.execute(delete(BookingHold).where(BookingHold.booking_id == booking.id))
    holds = [await _new_hold(session, booking, r, active=active, now=now) for r in resources]
    async with slot_guard():
        await queries.insert_rows(session, holds)


async def _least_busy_first(
    session: AsyncSession, resources: list[ResourceRow], start: datetime
) -> list[ResourceRow]:
    """Fewest holding bookings on the local day of `start` first; ties keep the given order."""
    rows = (
        await session.execute(
            select(BookingHold.resource_id, BookingHold.start_time).where(
                BookingHold.resource_id.in_([r.id for r in resources]),
                BookingHold.active.is_(True),
                BookingHold.booking_id.is_not(None),
                BookingHold.start_time >= start - timedelta(days=1),
                BookingHold.start_time < start + timedelta(days=1),
            )
        )
    ).all()
    counts: dict[uuid.UUID, int] = {}
    for r in resources:
        zone = ZoneInfo(r.timezone)
        day = start.astimezone(zone).date()
        counts[r.id] = sum(1 for rid, s in rows if rid == r.id and s.astimezone(zone).date() == day)
    return sorted(resources, key=lambda r: counts[r.id])


async def _check_client(session: AsyncSession, app_id: uuid.UUID, client_id: uuid.UUID) -> None:
    try:
        await load_client(session, app_id, client_id)
    except NotFound:
        raise ValidationFailed.one("client_id", "no such client") from None


async def _lock_bookable(
    session: AsyncSession,
    app_id: uuid.UUID,
    ids: Sequence[uuid.UUID],
    *,
    hold: bool,
    field: str = "resource_id",
    client_id: uuid.UUID | None = None,
) -> list[ResourceRow]:
    """The resources in the given order, locked (queries.lock_resources), none archived.

    `hold`: the transaction will write active holds on them. `client_id`, if given, must exist
    too; it is checked first, in the same statement.
    """
    found, client_ok = await queries.lock_resources(
        session, app_id, ids, hold=hold, client_id=client_id
    )
    if not client_ok:
        raise ValidationFailed.one("client_id", "no such client")
    resources = []
    for resource_id in dict.fromkeys(ids):
        resource = found.get(resource_id)
        if resource is None:
            raise ValidationFailed.one(field, "no such resource")
        if resource.archived_at is not None:
            raise ResourceArchived(f"Resource {resource_id} is archived and takes no bookings.")
        resources.append(resource)
    return resources


async def _take_seat(
    session: AsyncSession, app_id: uuid.UUID, owner_id: uuid.UUID, *, now: datetime
) -> Booking:
    """Lock the class, check its window and capacity, and count one more seat taken."""
    owners = await queries.lock_bookings(session, [owner_id])
    if not owners or owners[0].app_id != app_id or owners[0].graph != "group_owner":
        raise ValidationFailed.one("owner_booking_id", "no such group_owner booking")
    owner = owners[0]
    if not GRAPHS[owner.graph].holds_in(owner.status):
        raise Conflict(
            f"The class is {owner.status} and takes no bookings.", booking_status=owner.status
        )
    check_booking_window(
        start=owner.start_time,
        now=now,
        min_booking_time=owner.min_booking_time,
        max_booking_time=owner.max_booking_time,
    )
    assert owner.max_seats is not None
    assert owner.seats_taken is not None
    if owner.seats_taken >= owner.max_seats:
        # Unpaid seats past their deadline block nobody: time them out now.
        due = await session.scalars(
            select(Booking.id).where(
                Booking.owner_booking_id == owner.id,
                Booking.status == "tentative",
                Booking.payment_due_at <= now,
            )
        )
        for seat in await queries.lock_bookings(session, list(due)):
            await _settle(session, seat, owner, now=now)  # re-checks each under its lock
    if owner.seats_taken >= owner.max_seats:
        raise SeatsFull(f"All {owner.max_seats} seats of this class are taken.")
    owner.seats_taken += 1
    return owner


# -- changing ------------------------------------------------------------------------------------


async def apply_action(
    session: AsyncSession,
    *,
    principal: Principal,
    booking_id: uuid.UUID,
    action: str,
    body: ActionBody,
    now: datetime,
) -> BookingOut:
    """Apply a graph action. A payment hold found overdue is timed out (and that is committed)."""
    error: SlotgraphError | None = None
    async with session.begin():
        booking, owner = await _lock_for_change(session, principal.app_id, booking_id)
        graph = GRAPHS[booking.graph]
        settled = await _settle(session, booking, owner, now=now)
        if settled == "timeout":
            error = PaymentExpired(
                f"The payment deadline {booking.payment_due_at} has passed; "
                "the booking is now unpaid.",
                booking_status=booking.status,
            )
        elif settled is not None:
            error = _invalid_action(graph, booking.status, action)
        else:
            transition = graph.transition(booking.status, action)
            if transition is None or transition.automatic:
                raise _invalid_action(graph, booking.status, action)
            if action == "cancel_by_customer" and owner is not None:
                check_cancel_window(
                    start=booking.start_time, now=now, min_cancel_time=owner.min_cancel_time
                )
            if action == "pay" and body.payment_id is not None:
                booking.payment_id = body.payment_id
            await _transition(
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
        result = booking_out(booking)
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
) -> BookingOut:
    """Change time, resource, details or meta. A new time or resource re-checks the slot."""
    changes = {
        k: v
        for k, v in data.model_dump(exclude_unset=True).items()
        if v is not None and k != "override_rules"
    }
    error: SlotgraphError | None = None
    async with session.begin():
        booking, owner = await _lock_for_change(session, principal.app_id, booking_id)
        graph = GRAPHS[booking.graph]
        settled = await _settle(session, booking, owner, now=now)
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
        result = booking_out(booking)
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
    if graph.holding is Holds.SEAT and span_fields:
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
    changed = [
        f
        for f in ("resource_id", "start_time", "end_time", "details", "meta")
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
        resources = await _lock_bookable(session, booking.app_id, _held_ids(booking), hold=holds)
        if not override_rules:
            for r in resources:
                av.check_booking(rules_of(r), start=start, end=end, now=now)
        await _rehold(session, booking, resources, active=holds, now=now)
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
                    meta={"changed": [f for f in changed if f != "details" and f != "meta"]},
                    event_type="booking.updated",
                )


AUTO_COMPLETE_AFTER = timedelta(hours=1)


async def run_timers(session: AsyncSession, *, now: datetime, limit: int = 500) -> int:
    """The worker's timers, all apps: due `timeout` and `expire`, then `complete` one hour after
    the end of confirmed and paid bookings. Returns how many bookings moved."""
    async with session.begin():
        moved = await _apply_due(session, now=now, app_id=None, limit=limit)
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
        owners, locked = await _lock_with_owners(session, rows)
        for booking in locked:
            transition = GRAPHS[booking.graph].transition(booking.status, "complete")
            if transition is None or not booking.auto_complete:
                continue  # changed while we waited for the lock
            owner = owners.get(booking.owner_booking_id) if booking.owner_booking_id else None
            await _transition(
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


# -- the state machine ---------------------------------------------------------------------------


async def _transition(
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
    transition = graph.transition(booking.status, action)
    if transition is None:
        raise _invalid_action(graph, booking.status, action)
    before = booking.status
    held, holds = graph.holds_in(before), graph.holds_in(transition.to)
    if graph.holding is Holds.SLOT and held != holds:
        if holds:  # e.g. confirm: take the slot now, with the resources' current buffers
            resources = await _lock_bookable(session, booking.app_id, _held_ids(booking), hold=True)
            await _rehold(session, booking, resources, active=True, now=now)
        else:
            await session.execute(
                update(BookingHold).where(BookingHold.booking_id == booking.id).values(active=False)
            )
    if graph.holding is Holds.SEAT and held and not holds:
        assert owner is not None
        assert owner.seats_taken is not None
        owner.seats_taken -= 1
    booking.status = transition.to
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


async def _cancel_seats(
    session: AsyncSession, owner: Booking, *, now: datetime, actor_key_id: uuid.UUID | None
) -> None:
    """The class is off: every seat still held goes to cancelled_by_owner, in this transaction."""
    seat_ids = await session.scalars(select(Booking.id).where(Booking.owner_booking_id == owner.id))
    for seat in await queries.lock_bookings(session, list(seat_ids)):
        if GRAPHS[seat.graph].holds_in(seat.status):
            await _transition(
                session,
                seat,
                "cancel_by_owner",
                owner=owner,
                now=now,
                actor_key_id=actor_key_id,
                message="The class was cancelled.",
            )


async def check_free(
    session: AsyncSession,
    resource_id: uuid.UUID,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    exclude: uuid.UUID | None,
) -> None:
    """Raise SlotUnavailable if an active hold overlaps; overdue payment holds are timed out.

    On SQLite this check is the guarantee (the transaction holds the write lock). On PostgreSQL
    it gives a clean answer in the common case; the exclusion constraint decides any race.
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
    for stale in await queries.lock_bookings(session, overdue):
        if await _settle(session, stale, None, now=now) is None:
            blocking += 1  # paid (or cancelled) meanwhile; re-counted conservatively
    if blocking:
        raise SlotUnavailable("The resource is already booked for (part of) this time.")


class _Taken(SlotUnavailable):
    """PostgreSQL's exclusion constraint refused a hold."""


@asynccontextmanager
async def slot_guard() -> AsyncIterator[None]:
    """Turn PostgreSQL's exclusion violation (23P01) into 409 slot_unavailable."""
    try:
        yield
    except DBAPIError as exc:
        if queries.is_exclusion_violation(exc):
            raise _Taken("The resource is already booked for (part of) this time.") from exc
        raise


def due_action(booking: Booking, now: datetime) -> str | None:
    """The automatic action due on this booking now, if any."""
    if payment_overdue(status=booking.status, payment_due_at=booking.payment_due_at, now=now):
        return "timeout"
    if request_expired(
        graph=booking.graph, status=booking.status, start=booking.start_time, now=now
    ):
        return "expire"
    return None


async def _settle(
    session: AsyncSession, booking: Booking, owner: Booking | None, *, now: datetime
) -> str | None:
    """Apply the automatic action due on a locked booking; returns it, or None if none was due."""
    action = due_action(booking, now)
    if action is None:
        return None
    if booking.owner_booking_id is not None and owner is None:
        (owner,) = await queries.lock_bookings(session, [booking.owner_booking_id])
    await _transition(session, booking, action, owner=owner, now=now, actor_key_id=None)
    return action


async def _apply_due(
    session: AsyncSession, *, now: datetime, app_id: uuid.UUID | None, limit: int = 500
) -> int:
    """Apply every due automatic action (of one app, or all). Returns how many moved."""
    payment = select(Booking.id, Booking.owner_booking_id).where(
        Booking.status == "tentative",
        Booking.payment_due_at.is_not(None),
        Booking.payment_due_at <= now,
    )
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
    owners, locked = await _lock_with_owners(session, due)
    moved = 0
    for booking in locked:
        owner = owners.get(booking.owner_booking_id) if booking.owner_booking_id else None
        moved += await _settle(session, booking, owner, now=now) is not None
    return moved


async def _lock_with_owners(
    session: AsyncSession, rows: Sequence[Row[uuid.UUID, uuid.UUID | None]]
) -> tuple[dict[uuid.UUID, Booking], list[Booking]]:
    """Lock the classes of these bookings, then the bookings: the global lock order."""
    if not rows:
        return {}, []
    owner_ids = [r[1] for r in rows if r[1] is not None]
    owners = {o.id: o for o in await queries.lock_bookings(session, owner_ids)}
    return owners, await queries.lock_bookings(session, [r[0] for r in rows])


# -- helpers -------------------------------------------------------------------------------------


def _invalid_action(graph: Graph, state: str, action: str) -> InvalidAction:
    allowed = graph.manual_actions(state)
    return InvalidAction(
        f"Action {action!r} is not allowed on a {graph.name} booking in state {state!r}; "
        + (f"allowed now: {', '.join(allowed)}." if allowed else "no action is allowed now."),
        booking_status=state,
        allowed_actions=allowed,
    )


async def _load(session: AsyncSession, app_id: uuid.UUID, booking_id: uuid.UUID) -> Booking:
    booking = await session.scalar(
        select(Booking).where(Booking.id == booking_id, Booking.app_id == app_id)
    )
    if booking is None:
        raise NotFound(f"No booking {booking_id}.")
    return booking


async def _lock_for_change(
    session: AsyncSession, app_id: uuid.UUID, booking_id: uuid.UUID
) -> tuple[Booking, Booking | None]:
    """Lock a booking for a change; for a seat, lock its class first (the global lock order)."""
    booking = await _load(session, app_id, booking_id)
    owner = None
    if booking.graph in SEAT_GRAPHS:
        assert booking.owner_booking_id is not None
        (owner,) = await queries.lock_bookings(session, [booking.owner_booking_id])
    (booking,) = await queries.lock_bookings(session, [booking_id])
    return booking, owner
