"""Where a new booking goes: its resource (or a pool's pick) and its holds, or a class's seat.

Called by `creating` inside the create's transaction (ADR 0005); split from it by what it holds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db import driver_sql, queries
from slotgraph.db.models import Booking, BookingHold
from slotgraph.db.queries import ResourceRow
from slotgraph.domain import availability as av
from slotgraph.domain.graphs import GRAPHS
from slotgraph.domain.rules import check_booking_window, payment_overdue_sql
from slotgraph.errors import Conflict, SeatsFull, SlotgraphError, SlotUnavailable, ValidationFailed
from slotgraph.schemas import BookingCreate
from slotgraph.services.bookings import lifecycle
from slotgraph.services.busy import rules_of
from slotgraph.services.common import Principal


@dataclass(frozen=True, slots=True)
class Placed:
    """Where a new booking goes: its resource (the pool's pick), every resource it holds when
    it holds several (assign `all`), its holds (to be written by the caller), and for an
    optimistic create the (resource id, version) that the write must still find."""

    resource_id: uuid.UUID
    resource_ids: list[str] | None
    holds: list[queries.NewRow]
    unchanged: queries.Unchanged | None


async def place_new(
    session: AsyncSession,
    principal: Principal,
    data: BookingCreate,
    *,
    booking_id: uuid.UUID,
    holds_now: bool,
    now: datetime,
    check_overlap: bool,
    optimistic: driver_sql.Autocommit | None = None,
    probe: queries.Probe | None = None,
) -> Placed:
    """Choose the resource(s) of a new booking (`booking_id`, over `data`'s time; `holds_now`:
    its initial state holds) and its holds.

    One resource: it must pass its rules and (if the initial state holds) be free. A pool
    (`resource_ids`): `in_order` and `least_busy` take the first candidate that passes and is
    free; `all` needs every one of them. Every candidate is locked first, so what the checks
    see cannot change before the commit. Without `check_overlap`, a single resource (or `all`) is
    not checked for overlaps here: the caller relies on the exclusion constraint.

    `optimistic` (one resource, no overlap check): read it on that connection without a lock;
    `unchanged` is the (resource id, version) that the write must still find. `probe` rides on
    the read of the resources (queries.lock_resources).
    """
    assert data.start_time is not None
    assert data.end_time is not None
    span = (data.start_time, data.end_time)
    ids = data.resource_ids or ([data.resource_id] if data.resource_id else [])
    resources = await lifecycle.lock_bookable(
        session,
        principal.app_id,
        ids,
        will_hold=holds_now,
        field="resource_ids" if data.resource_ids else "resource_id",
        client_id=data.client_id,
        optimistic=optimistic,
        probe=probe,
    )
    unchanged = None
    if optimistic is not None:
        assert len(resources) == 1, "optimistic: one resource"
        assert not check_overlap, "optimistic: the constraint is the check"
        unchanged = (resources[0].id, resources[0].row_version)
    enforce_rules = not data.override_rules
    if data.resource_ids and data.assign == "all":
        for r in resources:
            if enforce_rules:
                av.check_booking(rules_of(r), start=span[0], end=span[1], now=now)
        holds = [
            await lifecycle.new_hold(
                session, booking_id, span, r, active=holds_now, now=now, check_overlap=check_overlap
            )
            for r in resources
        ]
        return Placed(resources[0].id, [str(r.id) for r in resources], holds, unchanged)
    if data.resource_ids and data.assign == "least_busy":
        resources = await _least_busy_first(session, resources, span[0])
    first_error: SlotgraphError | None = None
    for r in resources:
        try:
            hold = await lifecycle.new_hold(
                session,
                booking_id,
                span,
                r,
                active=holds_now,
                now=now,
                enforce_rules=enforce_rules,
                check_overlap=check_overlap or len(resources) > 1,
            )
        except SlotgraphError as exc:
            if len(resources) == 1:
                raise
            if first_error is None or (
                isinstance(exc, SlotUnavailable) and not isinstance(first_error, SlotUnavailable)
            ):
                first_error = exc
            continue
        return Placed(r.id, None, [hold], unchanged)
    assert first_error is not None
    if isinstance(first_error, SlotUnavailable):
        raise SlotUnavailable("None of the resources in the pool is free for this time.")
    raise first_error


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


async def take_seat(
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
                Booking.owner_booking_id == owner.id, payment_overdue_sql(Booking, now)
            )
        )
        for seat in await queries.lock_bookings(session, list(due)):
            await lifecycle.apply_due_action(
                session, seat, owner, now=now
            )  # re-checks each under its lock
    if owner.seats_taken >= owner.max_seats:
        raise SeatsFull(f"All {owner.max_seats} seats of this class are taken.")
    owner.seats_taken += 1
    return owner
