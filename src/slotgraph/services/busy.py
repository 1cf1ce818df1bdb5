"""What a search, a feed and a booking read of a resource: its rules and its busy time.

Two range-filtered queries whatever the window: the resources (only the columns their rules need),
then their holds. services/availability.py combines them into free slots; services/feeds.py and
the booking services read the same rules and busy time.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Executable, Select, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import Booking, BookingHold, Resource
from slotgraph.db.queries import ResourceRow
from slotgraph.db.types import UTCDateTime
from slotgraph.domain import availability as av
from slotgraph.domain.rules import payment_overdue_sql
from slotgraph.errors import ValidationFailed
from slotgraph.services.search_rules import RULE_COLUMNS, rules_from

R = TypeVar("R")


def rules_of(resource: Resource | ResourceRow) -> av.Rules:
    return rules_from(*(getattr(resource, name) for name in RULE_COLUMNS))


@functools.cache
def _resources_statement() -> Select[Any]:
    """Built once: the columns the rules need, as plain rows (no ORM objects to build)."""
    return select(*Resource.__table__.c).where(
        Resource.app_id == bindparam("app_id"),
        Resource.id.in_(bindparam("ids", expanding=True)),
        Resource.archived_at.is_(None),
    )


async def load_resources(
    session: AsyncSession, app_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> list[ResourceRow]:
    """The app's resources with these ids, in the order asked (services/feeds.py uses it too)."""
    rows = await session.execute(_resources_statement(), {"app_id": app_id, "ids": list(ids)})
    return in_order({r.id: r for r in rows}, ids)


def in_order(found: dict[Any, R], ids: Sequence[uuid.UUID]) -> list[R]:
    """The resources in the order asked (each once); an id not found (or archived) is a 422."""
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise ValidationFailed.one("resource_id", f"no such resource: {', '.join(missing)}")
    return [found[i] for i in dict.fromkeys(ids)]


Busy = dict[uuid.UUID, list[tuple[datetime, datetime]]]


async def load_busy(
    session: AsyncSession,
    resources: Sequence[ResourceRow],
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    ignore_booking: uuid.UUID | None = None,
) -> Busy:
    """Each resource's active holds (which include their buffers) that could touch a slot in the
    window; overdue payment holds block nobody, nor do `ignore_booking`'s own.

    The overdue bookings come from a subquery on the small partial index of unpaid bookings, not
    from a join: joining every hold to its booking cost one primary-key lookup per hold, which
    grew with the table (docs/benchmarks.md). On PostgreSQL the holds of each resource arrive
    already merged into their union (`range_agg`, a multirange): a resource booked solid for two
    months is one row, not 1,440. SQLite sends the rows; the interval math takes either.
    """
    reach = max((max(r.buffer_before, r.buffer_after) for r in resources), default=timedelta(0))
    overdue = select(Booking.id).where(payment_overdue_sql(Booking, now))
    conditions = [
        BookingHold.resource_id.in_([r.id for r in resources]),
        BookingHold.active.is_(True),
        BookingHold.start_time < end + reach,
        BookingHold.end_time > start - reach,
        or_(BookingHold.booking_id.is_(None), BookingHold.booking_id.not_in(overdue)),
    ]
    if ignore_booking is not None:
        conditions.append(
            or_(BookingHold.booking_id.is_(None), BookingHold.booking_id != ignore_booking)
        )
    stmt: Executable
    if session.get_bind().dialect.name == "postgresql":
        merged = (
            select(
                BookingHold.resource_id,
                func.unnest(
                    func.range_agg(func.tstzrange(BookingHold.start_time, BookingHold.end_time))
                ).label("span"),
            )
            .where(*conditions)
            .group_by(BookingHold.resource_id)
            .subquery()
        )
        stmt = select(
            merged.c.resource_id,
            func.lower(merged.c.span, type_=UTCDateTime()),
            func.upper(merged.c.span, type_=UTCDateTime()),
        )
    else:
        stmt = select(BookingHold.resource_id, BookingHold.start_time, BookingHold.end_time).where(
            *conditions
        )
    busy: Busy = {r.id: [] for r in resources}
    for resource_id, s, e in await session.execute(stmt):
        busy[resource_id].append((s, e))
    return busy
