"""Availability search: two range-filtered queries (resources, then holds), then pure interval math.

No query per day or per resource: `GET /v1/availability` over 100 resources and 31 days costs the
same two queries as one resource and one day.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import Booking, BookingHold, Resource
from slotgraph.db.queries import ResourceRow
from slotgraph.domain import availability as av
from slotgraph.domain import overlay
from slotgraph.domain.rules import check_booking_window, payment_overdue_sql
from slotgraph.errors import BookingWindowClosed, ValidationFailed
from slotgraph.schemas import GroupSlot, Slot
from slotgraph.services.common import Principal

MAX_WINDOW = timedelta(days=93)


def rules_of(resource: Resource | ResourceRow) -> av.Rules:
    def hours(pairs: list[list[str]]) -> list[tuple[time, time | None]]:
        return [
            (time.fromisoformat(a), None if b == "24:00" else time.fromisoformat(b))
            for a, b in pairs
        ]

    weekly = None
    if resource.weekly_hours is not None:
        weekly = {day: hours(pairs) for day, pairs in resource.weekly_hours.items()}
    return av.Rules(
        timezone=resource.timezone,
        weekly_hours=weekly,
        exceptions={date.fromisoformat(e["date"]): hours(e["hours"]) for e in resource.exceptions},
        buffer_before=resource.buffer_before,
        buffer_after=resource.buffer_after,
        min_notice=resource.min_notice,
        max_advance=resource.max_advance,
        min_duration=resource.min_duration,
        max_duration=resource.max_duration,
        slot_step=resource.slot_step,
    )


def _validate(start: datetime, end: datetime, duration: timedelta) -> None:
    errors = []
    if end <= start:
        errors.append(("end", "must be after start"))
    elif end - start > MAX_WINDOW:
        errors.append(("end", "the window is at most 93 days"))
    if duration <= timedelta(0):
        errors.append(("duration", "must be positive"))
    elif duration > end - start:
        errors.append(("duration", "must fit in the window"))
    if errors:
        raise ValidationFailed(errors)


async def _resources(
    session: AsyncSession, app_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> list[Resource]:
    found = {
        r.id: r
        for r in await session.scalars(
            select(Resource).where(
                Resource.app_id == app_id, Resource.id.in_(ids), Resource.archived_at.is_(None)
            )
        )
    }
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise ValidationFailed.one("resource_id", f"no such resource: {', '.join(missing)}")
    return [found[i] for i in dict.fromkeys(ids)]


async def _busy(
    session: AsyncSession,
    resources: list[Resource],
    start: datetime,
    end: datetime,
    *,
    now: datetime,
) -> dict[uuid.UUID, list[tuple[datetime, datetime]]]:
    """Active holds that could touch a slot in the window; overdue payment holds block nobody.

    The overdue bookings come from a subquery on the small partial index of unpaid bookings, not
    from a join: joining every hold to its booking cost one primary-key lookup per hold, which
    grew with the table (docs/benchmarks.md).
    """
    reach = max((max(r.buffer_before, r.buffer_after) for r in resources), default=timedelta(0))
    overdue = select(Booking.id).where(payment_overdue_sql(Booking, now))
    rows = await session.execute(
        select(BookingHold.resource_id, BookingHold.start_time, BookingHold.end_time)
        .where(
            BookingHold.resource_id.in_([r.id for r in resources]),
            BookingHold.active.is_(True),
            BookingHold.start_time < end + reach,
            BookingHold.end_time > start - reach,
            or_(BookingHold.booking_id.is_(None), BookingHold.booking_id.not_in(overdue)),
        )
        .order_by(BookingHold.start_time)
    )
    busy: dict[uuid.UUID, list[tuple[datetime, datetime]]] = {r.id: [] for r in resources}
    for resource_id, s, e in rows:
        busy[resource_id].append((s, e))
    return busy


def _streams(
    resources: list[Resource],
    busy: dict[uuid.UUID, list[tuple[datetime, datetime]]],
    q: Query,
    *,
    now: datetime,
    past_ok: bool,
) -> list[Iterator[datetime]]:
    start, end, duration, step = q.start, q.end, q.duration, q.step
    streams = []
    for r in resources:
        rules = overlay.restrict(rules_of(r), mask=q.mask, min_buffer=q.min_buffer)
        if not past_ok and rules.min_notice is None:
            # What may be booked may be offered: the public key never books a start that has
            # passed (domain.rules.check_start_for_key), so it is not offered one either.
            rules = replace(rules, min_notice=timedelta(0))
        spans = sorted([*busy[r.id], *q.extra_busy]) if q.extra_busy else busy[r.id]
        starts = av.free_starts(rules, window=(start, end), duration=duration, busy=spans, now=now)
        # Lazy: grid points are made only as far as the caller reads (limit=1 stops early).
        streams.append(av.slots_in(starts, av.grid(rules, start, end, step)))
    return streams


@dataclass(frozen=True)
class Query:
    """A slot search: which resources, when, how long, how to combine them."""

    resource_ids: Sequence[uuid.UUID]
    start: datetime
    end: datetime
    duration: timedelta
    step: timedelta | None = None
    mode: str = "any"
    timezone: str = "UTC"
    # Narrowing for one query (the Timekit adapter's constraints): never widens the rules.
    mask: Mapping[str, av.Hours] | None = None  # weekday -> local hours, in each resource's zone
    min_buffer: timedelta | None = None  # at least this much room around existing holds
    extra_busy: Sequence[tuple[datetime, datetime]] = ()  # UTC spans treated as taken


async def _free(
    session: AsyncSession, principal: Principal, q: Query, *, now: datetime, lazy: bool
) -> tuple[list[Resource], Iterator[tuple[datetime, list[int]]]]:
    """Load (two queries, one transaction), then merge each resource's free starts."""
    _validate(q.start, q.end, q.duration)
    async with session.begin():
        resources = await _resources(session, principal.app_id, q.resource_ids)
        reach = q.min_buffer or timedelta(0)
        busy = await _busy(session, resources, q.start - reach, q.end + reach, now=now)
    streams = _streams(resources, busy, q, now=now, past_ok=principal.kind == "secret")
    return resources, av.merged_slots(streams, mode=q.mode, lazy=lazy)


async def search(
    session: AsyncSession, *, principal: Principal, query: Query, limit: int | None, now: datetime
) -> list[Slot]:
    resources, merged = await _free(session, principal, query, now=now, lazy=limit is not None)
    zone = ZoneInfo(query.timezone)
    return [
        Slot(
            start_time=at.astimezone(zone),
            end_time=(at + query.duration).astimezone(zone),
            resource_ids=[resources[i].id for i in sorted(free)],
        )
        for at, free in itertools.islice(merged, limit)
    ]


async def dates(
    session: AsyncSession, *, principal: Principal, query: Query, now: datetime
) -> list[date]:
    """The local dates (in the query's `timezone`) with at least one slot."""
    _, merged = await _free(session, principal, query, now=now, lazy=False)
    zone = ZoneInfo(query.timezone)
    return list(dict.fromkeys(at.astimezone(zone).date() for at, _ in merged))


async def groups(
    session: AsyncSession,
    *,
    principal: Principal,
    resource_ids: Sequence[uuid.UUID],
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[GroupSlot]:
    """Classes starting in the window that still have seats and take bookings now."""
    if end <= start or end - start > MAX_WINDOW:
        raise ValidationFailed.one("end", "must be after start, at most 93 days later")
    seat = Booking.__table__.alias("seat")
    overdue = (
        select(func.count())
        .select_from(seat)
        .where(seat.c.owner_booking_id == Booking.id, payment_overdue_sql(seat.c, now))
        .scalar_subquery()
    )
    async with session.begin():
        await _resources(session, principal.app_id, resource_ids)
        rows = (
            await session.execute(
                select(Booking, overdue)
                .where(
                    Booking.app_id == principal.app_id,
                    Booking.graph == "group_owner",
                    Booking.status == "confirmed",
                    Booking.resource_id.in_(resource_ids),
                    and_(Booking.start_time >= start, Booking.start_time < end),
                )
                .order_by(Booking.start_time, Booking.id)
            )
        ).all()
    out = []
    for owner, unpaid_overdue in rows:
        assert owner.max_seats is not None
        assert owner.seats_taken is not None
        left = owner.max_seats - owner.seats_taken + int(unpaid_overdue)
        if left <= 0:
            continue
        try:
            check_booking_window(
                start=owner.start_time,
                now=now,
                min_booking_time=owner.min_booking_time,
                max_booking_time=owner.max_booking_time,
            )
        except BookingWindowClosed:
            continue
        out.append(
            GroupSlot(
                booking_id=owner.id,
                resource_id=owner.resource_id,
                start_time=owner.start_time,
                end_time=owner.end_time,
                max_seats=owner.max_seats,
                seats_left=left,
                details=owner.details,
            )
        )
    return out
