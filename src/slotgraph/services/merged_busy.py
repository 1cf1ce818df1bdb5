"""PostgreSQL: a search's resources with the union of each one's holds, in one statement.

One prepared statement on a pooled connection's driver, without a transaction (one snapshot, one
round trip): each resource's id and rule columns, and its holds near the window merged by
`range_agg` into disjoint spans, sent as one `bytea` of their bounds in PostgreSQL's own binary
form (microseconds, exact). services/availability.py computes the free starts from them (ADR
0004); SQLite takes the two queries of services/busy.py instead.
"""

from __future__ import annotations

import functools
import sys
import uuid
from array import array
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    DateTime,
    Integer,
    Select,
    Text,
    Uuid,
    any_,
    bindparam,
    cast,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.sqltypes import NullType

from slotgraph.db import driver_sql
from slotgraph.db.engine import driver_fetch
from slotgraph.db.models import Booking, BookingHold, Resource
from slotgraph.db.types import UTCDateTime
from slotgraph.domain import availability as av
from slotgraph.domain.rules import payment_overdue_sql
from slotgraph.services.busy import in_order
from slotgraph.services.search_rules import RULE_COLUMNS, RuleKey, SearchRules, search_rules

# Each resource's busy spans in epoch microseconds, [lo, hi): what the search computes with.
BusyMicros = dict[uuid.UUID, list[av.Micros]]
_AS_TEXT = ("weekly_hours", "exceptions")  # read as text (services/search_rules.py)


@functools.cache
def _load_in_one_statement(ignoring: bool = False, single: bool = False) -> Select[Any]:
    """PostgreSQL: each resource's id and rules with the union of its holds near the window.

    Built once, with parameters (a second time with `ignoring`: without the holds of the
    booking `ignore`, which a reschedule moves). `single`: for one resource, named by `id`
    instead of `ids`. Its plan is then the same for any parameters, and PostgreSQL keeps one
    (a generic plan) after five executions instead of planning each one (0.15 ms of its 0.8 ms
    for one's 2,000 holds; ADR 0004). The payment rule's constants are written into the SQL
    for a generic plan to use the partial index on them. With a list of ids PostgreSQL
    estimates ten resources for a generic plan: it keeps one for a long list (many's 100) and
    plans each search over a few.

    A hold matters to a resource when it ends after `start - buffer_before` and starts before
    `end + buffer_after` (its own buffers, or the query's `min_buffer` when larger). The union
    (`range_agg`, a multirange) comes as one `bytea` of [lower, upper] pairs, each bound as
    `timestamptz_send` writes it (8 bytes, big-endian microseconds since 2000): no conversion
    per bound in PostgreSQL (`date_part` and the arrays of arrays were half of the statement's
    CPU for 2,000 holds), one `array` in Python.
    """
    hold, resource = BookingHold, Resource.__table__
    second: ColumnElement[Any] = literal_column("interval '1 second'")
    extra = bindparam("extra", type_=Integer())
    start = bindparam("start", type_=UTCDateTime())
    end = bindparam("end", type_=UTCDateTime())
    # plain timestamptz: the rule subtracts an interval from it in SQL
    now = bindparam("now", type_=DateTime(timezone=True))
    overdue = select(Booking.id).where(payment_overdue_sql(Booking, now, written=True))
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
    bounds = func.timestamptz_send(func.lower(span)).op("||")(
        func.timestamptz_send(func.upper(span))
    )
    pairs = func.string_agg(bounds, literal_column("''::bytea"), type_=NullType())
    spans = select(pairs).correlate(resource).scalar_subquery()
    # The JSON columns as their text: it keys the rules built from them (services/search_rules.py)
    needed = [
        cast(resource.c[name], Text).label(name) if name in _AS_TEXT else resource.c[name]
        for name in ("id", *RULE_COLUMNS)
    ]
    which = (
        resource.c.id == bindparam("id", type_=Uuid())
        if single
        else resource.c.id == any_(bindparam("ids", type_=postgresql.ARRAY(Uuid())))
    )
    return select(*needed, spans.label("busy")).where(
        resource.c.app_id == bindparam("app_id"), which, resource.c.archived_at.is_(None)
    )


# Microseconds from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch), both UTC.
_EPOCH_2000 = 946_684_800_000_000


def _spans(sent: bytes | None) -> list[av.Micros]:
    """The [lower, upper] pairs of a resource's busy spans, in epoch microseconds."""
    if not sent:
        return []
    bounds = array("q", sent)
    if sys.byteorder == "little":
        bounds.byteswap()
    micros = iter([b + _EPOCH_2000 for b in bounds])
    return list(zip(micros, micros, strict=True))


@functools.cache
def _prepared(dialect: Dialect, ignoring: bool, single: bool) -> driver_sql.Prepared:
    stmt = _load_in_one_statement(ignoring, single)
    prepared = driver_sql.prepare(stmt, dialect)
    given = {name for name, value, _ in prepared.params}
    assert all(value is None for _, value, _ in prepared.params), "only what each call gives"
    assert given == {"app_id", "id" if single else "ids", "start", "end", "extra", "now"} | (
        {"ignore"} if ignoring else set()
    )
    assert prepared.columns == ("id", *RULE_COLUMNS, "busy"), prepared.columns
    return prepared


class SearchedResource(NamedTuple):
    """A resource as a search reads it: its id and its rules (services/search_rules.py)."""

    id: uuid.UUID
    rules: SearchRules


def _rule_columns(prepared: driver_sql.Prepared, key: RuleKey) -> RuleKey:
    """The rule columns of a row as the models hold them (durations as `timedelta`), from the
    row as read: what the cache builds rules from when it has no entry for them."""
    return tuple(prepared.converted([None, *key])[1:])  # at the row's positions: the id first


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
) -> tuple[list[SearchedResource], BusyMicros]:
    """PostgreSQL: the resources (in the order asked; 422 for one not found) and the union of
    each one's holds that could touch a slot in [start, end), in one statement, without a
    transaction.

    The statement is built and compiled by SQLAlchemy once and run on the pooled connection's
    driver (asyncpg prepares it once per connection), with the column types' own conversions
    applied here to the few columns that have one: SQLAlchemy's session, per-execution work and
    result processing cost more CPU than the rest of a small search (db/engine.py `driver_fetch`
    keeps what its error handling does: a lost connection is still 503 and leaves the pool).
    """
    single = len(ids) == 1
    given: dict[str, object] = {
        "app_id": app_id,
        "id" if single else "ids": ids[0] if single else list(ids),
        "start": start,
        "end": end,
        "extra": int((min_buffer or timedelta(0)).total_seconds()),
        "now": now,
    }
    ignoring = ignore_booking is not None
    if ignoring:
        given["ignore"] = ignore_booking
    prepared = _prepared(session.get_bind().dialect, ignoring, single)
    args = prepared.arguments(given)
    if isinstance(session.bind, AsyncEngine):
        rows: Sequence[Any] = await driver_fetch(session.bind, prepared.sql, *args)
    else:  # a session on a connection of its caller's: read in the caller's transaction
        rows = (await (await session.connection()).exec_driver_sql(prepared.sql, args)).all()
    # Each row's rule columns as read (the JSON ones as text, durations as seconds) are the key
    # of its rules: converted only when the cache has none for them.
    decode = functools.partial(_rule_columns, prepared)
    found = {row[0]: row for row in rows}
    resources, busy = [], {}
    for row in in_order(found, ids):
        resources.append(SearchedResource(row[0], search_rules(tuple(row[1:-1]), decode)))
        busy[row[0]] = _spans(row[-1])
    return resources, busy
