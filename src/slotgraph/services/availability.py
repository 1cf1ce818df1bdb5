"""Availability search: two range-filtered queries (resources, then holds), then pure interval math.

No query per day or per resource: `GET /v1/availability` over 100 resources and 31 days costs the
same two queries as one resource and one day.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    and_,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.bounds import window_error
from slotgraph.db.models import Booking
from slotgraph.domain import availability as av
from slotgraph.domain import overlay
from slotgraph.domain import wallclock as wc
from slotgraph.domain.combine import Points, Slots, free_dates, merged_slots
from slotgraph.domain.rules import check_booking_window, payment_overdue_sql
from slotgraph.errors import BookingWindowClosed, ValidationFailed
from slotgraph.schemas import GroupSlot
from slotgraph.services.busy import load_busy, load_resources
from slotgraph.services.common import Principal
from slotgraph.services.merged_busy import BusyMicros, SearchedResource, load_merged
from slotgraph.services.search_rules import key_of_values, search_rules

# The bounds of one search (docs/availability.md; its window: bounds.MAX_WINDOW). Each is
# answered with a 422 naming it.
MAX_RESOURCES = 200  # resource ids in one search
DEFAULT_LIMIT = 500  # slots in one answer when `limit` is not given
MAX_LIMIT = 5_000
MAX_LISTED = 100_000  # limit x resources: resource ids one answer may list (about 4 MB of JSON)
MAX_CANDIDATES = 1_000_000  # grid starts one search may consider: resources x window / step


def _validate(q: SlotSearch, limit: int) -> None:
    errors = []
    if wrong := window_error(q.start, q.end):
        errors.append(("end", wrong))
    if q.duration <= timedelta(0):
        errors.append(("duration", "must be positive"))
    elif q.duration > q.end - q.start:
        errors.append(("duration", "must fit in the window"))
    if len(q.resource_ids) > MAX_RESOURCES:
        errors.append(("resource_id", f"at most {MAX_RESOURCES} resources in one search"))
    if not 1 <= limit <= MAX_LIMIT:
        errors.append(("limit", f"from 1 to {MAX_LIMIT:,}"))
    elif limit * len(q.resource_ids) > MAX_LISTED:
        errors.append(
            (
                "limit",
                f"limit x resources is at most {MAX_LISTED:,} (the resource ids one answer may "
                f"list); with {len(q.resource_ids)} resources, limit is at most "
                f"{MAX_LISTED // len(q.resource_ids):,}",
            )
        )
    if errors:
        raise ValidationFailed(errors)


def _check_work(q: SlotSearch, resources: Sequence[SearchedResource]) -> None:
    """Every resource's grid over the window, together, may have at most MAX_CANDIDATES starts."""
    window = q.end - q.start
    candidates = sum(window // (q.step or r.rules.own.slot_step) for r in resources)
    if candidates > MAX_CANDIDATES:
        raise ValidationFailed.one(
            "step",
            f"a search considers at most {MAX_CANDIDATES:,} start times (resources x window / "
            f"step); this one would consider {candidates:,}: use a shorter window, a larger "
            "step or fewer resources",
        )


# Each resource's busy spans in epoch microseconds (exact), [lo, hi): what the search computes with.


def _free_points(
    resources: list[SearchedResource],
    busy: BusyMicros,
    q: SlotSearch,
    *,
    now: datetime,
    past_ok: bool,
) -> list[Iterator[Points]]:
    """Each resource's free grid starts, as lazy streams of runs (nothing is made until read)."""
    streams = []
    opened: dict[object, list[tuple[int, int]]] = {}  # hours -> opening, for this search
    extra = [(wc.micros(x), wc.micros(y)) for x, y in q.extra_busy]
    narrowed = q.mask is not None or q.min_buffer is not None
    for r in resources:
        found = r.rules
        # What may be booked may be offered: a public key is not offered a start that has passed
        own = found.own if past_ok else found.public
        if narrowed:
            own = overlay.restrict(own, mask=q.mask, min_buffer=q.min_buffer)
        spans = [*busy[r.id], *extra] if extra else busy[r.id]
        if found.hours not in opened:
            opened[found.hours] = av.opening_seconds(own, q.start, q.end)
        starts = av.free_seconds(
            own,
            window=(q.start, q.end),
            duration=q.duration,
            busy=spans,
            now=now,
            opened=opened[found.hours],
        )
        streams.append(av.slot_runs(own, starts, q.step))
    return streams


@dataclass(frozen=True)
class SlotSearch:
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
    # The booking being moved (the manage link's reschedule): its own holds take no time from it.
    ignore_booking: uuid.UUID | None = None


@dataclass(slots=True)
class FoundSlot:
    """A free slot, as `Slot` shows it (kept plain: an answer may list 100,000 resource ids).

    The ids are text (as the JSON writes them): orjson writes a string several times faster than
    it formats a UUID, which was the largest single cost of a 100-resource answer.
    """

    start_time: datetime
    end_time: datetime
    resource_ids: list[str]


async def _load(
    session: AsyncSession, principal: Principal, q: SlotSearch, *, now: datetime
) -> tuple[list[SearchedResource], list[Iterator[Points]]]:
    """Load the resources and what keeps them busy, check the work is bounded, then the starts.

    PostgreSQL: one statement (one snapshot, so no transaction to open and close: one round
    trip instead of four). SQLite: two queries in one transaction.
    """
    if session.get_bind().dialect.name == "postgresql":
        resources, busy = await load_merged(
            session,
            principal.app_id,
            q.resource_ids,
            start=q.start,
            end=q.end,
            now=now,
            min_buffer=q.min_buffer,
            ignore_booking=q.ignore_booking,
        )
        _check_work(q, resources)
    else:
        async with session.begin():
            rows = await load_resources(session, principal.app_id, q.resource_ids)
            resources = [SearchedResource(r.id, search_rules(key_of_values(r))) for r in rows]
            _check_work(q, resources)
            reach = q.min_buffer or timedelta(0)
            held = await load_busy(
                session,
                rows,
                q.start - reach,
                q.end + reach,
                now=now,
                ignore_booking=q.ignore_booking,
            )
            busy = {
                rid: [(wc.micros(x), wc.micros(y)) for x, y in spans] for rid, spans in held.items()
            }
    past_ok = principal.kind == "secret"
    return resources, _free_points(resources, busy, q, now=now, past_ok=past_ok)


def largest_limit(resource_count: int) -> int:
    """The largest `limit` the bounds allow for a search over this many resources."""
    return max(1, min(MAX_LIMIT, MAX_LISTED // max(1, resource_count)))


@dataclass(frozen=True, slots=True)
class Found:
    """A search's slots as it finds them: each start in epoch seconds with the ids of the
    resources free then (consecutive starts may share one list); every slot lasts `length`
    seconds and is shown in `timezone`. api/slot_json.py writes it as JSON text directly."""

    slots: Slots[str]
    length: int
    timezone: str

    def found_slots(self) -> list[FoundSlot]:
        zone = ZoneInfo(self.timezone)
        return [
            FoundSlot(
                datetime.fromtimestamp(at, zone),
                datetime.fromtimestamp(at + self.length, zone),
                free,
            )
            for at, free in self.slots
        ]


async def find(
    session: AsyncSession, *, principal: Principal, query: SlotSearch, limit: int, now: datetime
) -> Found:
    """The first `limit` free slots, sorted by start, with the resources free at each."""
    _validate(query, limit)
    resources, streams = await _load(session, principal, query, now=now)
    ids = [str(r.id) for r in resources]
    merged = merged_slots(streams, ids, mode=query.mode, limit=limit)
    return Found(merged, query.duration // wc.SECOND, query.timezone)


async def search(
    session: AsyncSession, *, principal: Principal, query: SlotSearch, limit: int, now: datetime
) -> list[FoundSlot]:
    """`find`'s slots as datetimes (the booking pages and the /v2 adapter read them)."""
    found = await find(session, principal=principal, query=query, limit=limit, now=now)
    return found.found_slots()


async def dates(
    session: AsyncSession, *, principal: Principal, query: SlotSearch, now: datetime
) -> list[date]:
    """The local dates (in the query's `timezone`) with at least one slot.

    Each stream is read a day at a time (`combine.free_dates`): after a start is found, the rest
    of its local date is skipped, in "all" mode too, so the work follows the free runs and days,
    not the starts.
    """
    _validate(query, 1)
    _, streams = await _load(session, principal, query, now=now)
    return free_dates(streams, query.timezone, mode=query.mode)


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
    if wrong := window_error(start, end):
        raise ValidationFailed.one("end", wrong)
    seat = Booking.__table__.alias("seat")
    overdue = (
        select(func.count())
        .select_from(seat)
        .where(seat.c.owner_booking_id == Booking.id, payment_overdue_sql(seat.c, now))
        .scalar_subquery()
    )
    async with session.begin():
        await load_resources(session, principal.app_id, resource_ids)
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
