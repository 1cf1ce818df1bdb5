"""PostgreSQL: a search's resources with the union of each one's holds, in one statement.

One prepared statement in autocommit (one snapshot, one round trip): each resource's id and rule
columns, and its holds near the window merged by `range_agg` into disjoint spans, sent as epoch
microseconds. services/availability.py computes the free starts from them (ADR 0004); SQLite takes
the two queries of services/busy.py instead.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    Select,
    Uuid,
    any_,
    bindparam,
    cast,
    extract,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.sqltypes import NullType

from slotgraph.db import driver_sql
from slotgraph.db.models import Booking, BookingHold, Resource
from slotgraph.db.types import UTCDateTime
from slotgraph.domain import availability as av
from slotgraph.domain.rules import payment_overdue_sql
from slotgraph.services.busy import RULE_COLUMNS, in_order

# Each resource's busy spans in epoch microseconds, [lo, hi): what the search computes with.
BusyMicros = dict[uuid.UUID, list[av.Micros]]


@functools.cache
def _load_in_one_statement(ignoring: bool = False, exact: bool = False) -> Select[Any]:
    """PostgreSQL: each resource's id and rules with the union of its holds near the window.

    Built once, with parameters (a second time with `ignoring`: without the holds of the
    booking `ignore`, which a reschedule moves). A hold matters to a resource when it ends after
    `start - buffer_before` and starts before `end + buffer_after` (its own buffers, or the
    query's `min_buffer` when larger). The union (`range_agg`, a multirange) comes as [lower, upper]
    pairs of epoch microseconds in one bigint array, which asyncpg decodes in C: widened to whole
    seconds (`_seconds`), or `exact` (`_micros`, numeric and slower in PostgreSQL) for a search
    whose duration or buffer is not whole seconds.
    """
    hold, resource = BookingHold, Resource.__table__
    second: ColumnElement[Any] = literal_column("interval '1 second'")
    extra = bindparam("extra", type_=Integer())
    start = bindparam("start", type_=UTCDateTime())
    end = bindparam("end", type_=UTCDateTime())
    # plain timestamptz: the rule subtracts an interval from it in SQL
    now = bindparam("now", type_=DateTime(timezone=True))
    overdue = select(Booking.id).where(payment_overdue_sql(Booking, now))  # type: ignore[arg-type]
    conditions = [
        hold.resource_id == resource.c.id,
        hold.active.is_(True),
        hold.start_time < end + func.greatest(resource.c.buffer_after, extra) * second,
        hold.end_time > start - func.greatest(resource.c.buffer_before, extra) * second,
        or_(hold.booking_id.is_(None), hold.booking_id.not_in(overdue)),
    ]
    if ignoring:
        ignore = bindparam("ignore", type_=hold.booking_id.type)
        conditions.append(or_(hold.booking_id.is_(None), hold.booking_id != ignore))
    merged = (
        select(func.unnest(func.range_agg(func.tstzrange(hold.start_time, hold.end_time))))
        .where(*conditions)
        .correlate(resource)
        .subquery("merged")
    )
    span = merged.c[0]
    bounds = [_micros(func.lower(span)), _micros(func.upper(span))] if exact else _seconds(span)
    pairs = func.array_agg(postgresql.array(bounds), type_=NullType())
    spans = select(pairs).correlate(resource).scalar_subquery()
    needed = [resource.c[name] for name in ("id", *RULE_COLUMNS)]
    return select(*needed, spans.label("busy")).where(
        resource.c.app_id == bindparam("app_id"),
        resource.c.id == any_(bindparam("ids", type_=postgresql.ARRAY(Uuid()))),
        resource.c.archived_at.is_(None),
    )


def _micros(at: ColumnElement[Any]) -> ColumnElement[Any]:
    """An instant as whole microseconds since the epoch: `extract` is exact (numeric)."""
    return cast(extract("epoch", at) * literal_column("1000000"), BigInteger)


def _seconds(span: ColumnElement[Any]) -> list[ColumnElement[Any]]:
    """A span widened to whole seconds [floor(lower), ceil(upper)), in microseconds.

    `date_part` is float8 (fast): exact for whole seconds, and within a microsecond elsewhere up
    to 2200, so floor and ceil are exact. A whole-second start is forbidden by a hold exactly
    when it is by the widened hold if the duration and the buffers are whole seconds: t > x - d
    iff t > floor(x) - d, t < y + b iff t < ceil(y) + b, for whole t, d and b.
    """

    def whole(at: ColumnElement[Any], rounding: Any) -> ColumnElement[Any]:
        seconds = cast(rounding(func.date_part(literal_column("'epoch'"), at)), BigInteger)
        return seconds * literal_column("1000000")

    return [whole(func.lower(span), func.floor), whole(func.upper(span), func.ceil)]


@functools.cache
def _prepared(dialect: Dialect, ignoring: bool, exact: bool) -> driver_sql.Prepared:
    stmt = _load_in_one_statement(ignoring, exact)
    prepared = driver_sql.prepare(stmt, dialect)
    given = {name for name, value, _ in prepared.params if value is None}
    assert given == {"app_id", "ids", "start", "end", "extra", "now"} | (
        {"ignore"} if ignoring else set()
    )
    assert prepared.columns == tuple(f.name for f in fields(_Found)), prepared.columns
    return prepared


@dataclass(frozen=True, slots=True)
class _Found:
    """A resource as a search reads it: its id, the columns of its rules, its busy spans."""

    id: uuid.UUID
    timezone: str
    weekly_hours: dict[str, list[list[str]]] | None
    exceptions: list[dict[str, Any]]
    buffer_before: timedelta
    buffer_after: timedelta
    min_notice: timedelta | None
    max_advance: timedelta | None
    min_duration: timedelta | None
    max_duration: timedelta | None
    slot_step: timedelta
    busy: list[list[int]] | None


async def load_merged(
    session: AsyncSession,
    app_id: uuid.UUID,
    ids: Sequence[uuid.UUID],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    min_buffer: timedelta | None,
    ignore_booking: uuid.UUID | None,
    exact: bool,
) -> tuple[list[Any], BusyMicros]:
    """PostgreSQL: the resources (in the order asked; 422 for one not found) and the union of
    each one's holds that could touch a slot in [start, end), in one statement, in autocommit.
    `exact`: the holds to the microsecond, for a duration or buffer with a fraction of a second.

    The statement is built and compiled by SQLAlchemy once and run as driver SQL (asyncpg
    prepares it once per connection), with the column types' own conversions applied here to
    the few columns that have one: SQLAlchemy's per-execution compile-cache lookup, parameter
    and result processing cost more CPU than the rows' conversion (`exec_driver_sql` keeps its
    error handling: a lost connection is still 503 and leaves the pool).
    """
    given: dict[str, object] = {
        "app_id": app_id,
        "ids": list(ids),
        "start": start,
        "end": end,
        "extra": int((min_buffer or timedelta(0)).total_seconds()),
        "now": now,
    }
    ignoring = ignore_booking is not None
    if ignoring:
        given["ignore"] = ignore_booking
    async with session.begin():  # in autocommit: no BEGIN or COMMIT goes to the server
        conn = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        prepared = _prepared(conn.dialect, ignoring, exact)
        rows = await driver_sql.run(conn, prepared, given)
    found: dict[Any, _Found] = {}
    for row in rows:
        resource = _Found(*prepared.converted(row))
        found[resource.id] = resource
    resources = in_order(found, ids)
    busy: BusyMicros = {r.id: [(a, b) for a, b in r.busy or ()] for r in resources}
    return resources, busy
