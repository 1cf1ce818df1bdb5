"""Reads paged by number, with a total: what page-numbered clients (Timekit) need.

`/v1` lists page with cursors and never count; these reads serve the adapters that page by
number. The work is bounded: one count and one page (at most `MAX_LIMIT` rows) per call, then one
query each for the clients and resources of that page.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from slotgraph.db.models import Base, Booking, Client, Resource
from slotgraph.domain.graphs import GRAPHS
from slotgraph.schemas import BookingOut, ClientOut, ResourceOut
from slotgraph.services import access
from slotgraph.services.bookings import timers
from slotgraph.services.common import Principal
from slotgraph.services.views import booking_out, client_out, resource_out

MAX_LIMIT = 200
FINAL_STATES = frozenset(s for g in GRAPHS.values() for s in g.final_states)


T = TypeVar("T", bound=Base)


async def counted(
    session: AsyncSession,
    model: type[T],
    where: Sequence[ColumnElement[bool]],
    order: Sequence[InstrumentedAttribute[Any]],
    limit: int,
    offset: int,
) -> tuple[list[T], int]:
    """One page of rows (at most MAX_LIMIT) and how many match in all; in the caller's
    transaction."""
    total = await session.scalar(select(func.count()).select_from(model).where(*where))
    rows = await session.scalars(
        select(model).where(*where).order_by(*order).limit(min(limit, MAX_LIMIT)).offset(offset)
    )
    return list(rows), int(total or 0)


@dataclass(frozen=True)
class Filters:
    """All given filters must hold. `meta` paths are lists of keys into the booking's meta."""

    booking_id: uuid.UUID | None = None
    graphs: Sequence[str] = ()
    states: Sequence[str] = ()
    resource_id: uuid.UUID | None = None
    owner_booking_id: uuid.UUID | None = None
    customer_email: str | None = None
    customer_name: str | None = None  # a LIKE pattern (`like_pattern`), case-insensitive
    completed: bool | None = None
    starts_after: datetime | None = None
    meta: Sequence[tuple[tuple[str, ...], str]] = field(default_factory=tuple)


_ESCAPE = "\\"


def like_pattern(glob: str) -> str:
    """A search where `*` stands for any characters as a LIKE pattern: every other character
    matches itself (LIKE's `%`, `_` and the escape character escaped). Said explicitly as the
    escape character where it is used: SQLite's LIKE has none by default."""
    escaped = glob.replace(_ESCAPE, _ESCAPE * 2)
    escaped = escaped.replace("%", _ESCAPE + "%").replace("_", _ESCAPE + "_")
    return escaped.replace("*", "%")


def _conditions(app_id: uuid.UUID, f: Filters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Booking.app_id == app_id]
    if f.booking_id is not None:
        where.append(Booking.id == f.booking_id)
    if f.graphs:
        where.append(Booking.graph.in_(f.graphs))
    if f.states:
        where.append(Booking.status.in_(f.states))
    if f.resource_id is not None:
        where.append(Booking.resource_id == f.resource_id)
    if f.owner_booking_id is not None:
        where.append(Booking.owner_booking_id == f.owner_booking_id)
    if f.completed is not None:
        final = Booking.status.in_(sorted(FINAL_STATES))
        where.append(final if f.completed else ~final)
    if f.starts_after is not None:
        where.append(Booking.start_time > f.starts_after)
    for path, value in f.meta:
        where.append(Booking.meta[path].as_string() == value)
    if f.customer_email is not None or f.customer_name is not None:
        clients = select(Client.id).where(Client.app_id == app_id)
        if f.customer_email is not None:
            clients = clients.where(Client.email == f.customer_email.strip().lower())
        if f.customer_name is not None:
            pattern = f.customer_name.lower()
            clients = clients.where(func.lower(Client.name).like(pattern, escape=_ESCAPE))
        where.append(Booking.client_id.in_(clients))
    return where


async def search_bookings(
    session: AsyncSession,
    *,
    principal: Principal,
    filters: Filters,
    limit: int,
    offset: int,
    now: datetime,
) -> tuple[list[BookingOut], int]:
    """One page of matching bookings (by start time) and how many match in all. Due automatic
    actions (payment timeouts, expired requests) are applied first, as `GET /v1/bookings` does,
    so a state is never shown stale."""
    where = _conditions(principal.app_id, filters)
    async with session.begin():
        await timers.apply_all_due(session, now=now, app_id=principal.app_id)
        rows, total = await counted(
            session, Booking, where, (Booking.start_time, Booking.id), limit, offset
        )
        return [booking_out(b, now=now) for b in rows], total


@dataclass(frozen=True)
class Related:
    clients: dict[uuid.UUID, ClientOut]
    resources: dict[uuid.UUID, ResourceOut]


async def related(
    session: AsyncSession,
    *,
    principal: Principal,
    bookings: Sequence[BookingOut] = (),
    resource_ids: Sequence[uuid.UUID] = (),
) -> Related:
    """The clients and resources that some bookings (or ids) name: two queries at most."""
    client_ids = {b.client_id for b in bookings if b.client_id is not None}
    resource_ids = list({*resource_ids, *(r for b in bookings for r in b.resource_ids)})
    clients: Sequence[Client] = []
    resources: Sequence[Resource] = []
    async with session.begin():
        if client_ids:
            clients = (
                await session.scalars(
                    select(Client).where(
                        Client.app_id == principal.app_id, Client.id.in_(client_ids)
                    )
                )
            ).all()
        if resource_ids:
            resources = (
                await session.scalars(
                    select(Resource).where(
                        Resource.app_id == principal.app_id, Resource.id.in_(resource_ids)
                    )
                )
            ).all()
        return Related(
            clients={c.id: client_out(c) for c in clients},
            resources={r.id: access.resource_answer(principal, resource_out(r)) for r in resources},
        )


async def list_resources(
    session: AsyncSession, *, principal: Principal, limit: int, offset: int
) -> tuple[list[ResourceOut], int]:
    """One page of live resources (oldest first) and how many there are in all."""
    live = [Resource.app_id == principal.app_id, Resource.archived_at.is_(None)]
    async with session.begin():
        rows, total = await counted(
            session, Resource, live, (Resource.created_at, Resource.id), limit, offset
        )
        return [access.resource_answer(principal, resource_out(r)) for r in rows], total
