"""The timers of the graph table, applied: timeouts, expiries, auto-complete.

Nothing here names a state, an action or a moment: each graph declares its timers
(domain/graphs.py), and a new graph gets its timers by declaring them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db import queries
from slotgraph.db.models import Booking
from slotgraph.domain.graphs import GRAPHS, Timer
from slotgraph.domain.rules import timer_due_sql
from slotgraph.services.bookings import lifecycle


def _declared(*, automatic: bool) -> list[tuple[Timer, tuple[str, ...]]]:
    """Every timer of the table once, with the graphs that declare it. `automatic`: only the
    timers whose action is automatic."""
    graphs: dict[Timer, list[str]] = {}
    for graph in GRAPHS.values():
        for timer in graph.timers:
            if not automatic or graph.is_automatic(timer.state, timer.action):
                graphs.setdefault(timer, []).append(graph.name)
    return [(timer, tuple(names)) for timer, names in graphs.items()]


_ALL = _declared(automatic=False)
_AUTOMATIC = _declared(automatic=True)


async def run_timers(session: AsyncSession, *, now: datetime, limit: int = 500) -> int:
    """The worker's timers, all apps: every timer of every graph that is due (at most `limit`
    bookings per timer). Returns how many bookings moved. A booking another transaction has
    locked (a request changing it, a psql session) is left for the next round: waiting for it
    held up every other timer and the worker's fan-out of new events behind it, as long as the
    lock was held (docs/operations.md, "Bad days")."""
    async with session.begin():
        return await _apply(
            session, _ALL, automatic=False, now=now, app_id=None, limit=limit, skip_locked=True
        )


async def apply_all_due(
    session: AsyncSession, *, now: datetime, app_id: uuid.UUID, limit: int = 500
) -> int:
    """Apply the automatic actions due in one app (before a request reads its bookings). A
    booking another transaction has locked is left as it stands, as the worker's timers leave
    it: the read waited for the lock, and answered 503 after the lock timeout (10 s)."""
    return await _apply(
        session, _AUTOMATIC, automatic=True, now=now, app_id=app_id, limit=limit, skip_locked=True
    )


async def _apply(
    session: AsyncSession,
    timers: list[tuple[Timer, tuple[str, ...]]],
    *,
    automatic: bool,
    now: datetime,
    app_id: uuid.UUID | None,
    limit: int,
    skip_locked: bool = False,
) -> int:
    """Find the bookings due under `timers`, lock them all at once (in the global lock order),
    and move each by the timer that is still due under its lock; with `skip_locked`, only those
    no other transaction holds (nor their class)."""
    due: list[Row[uuid.UUID, uuid.UUID | None]] = []
    for timer, graphs in timers:
        stmt = select(Booking.id, Booking.owner_booking_id).where(
            Booking.graph == graphs[0] if len(graphs) == 1 else Booking.graph.in_(graphs),
            timer_due_sql(timer, Booking, now),
        )
        if app_id is not None:
            stmt = stmt.where(Booking.app_id == app_id)
        stmt = stmt.order_by(getattr(Booking, timer.at)).limit(limit)
        due.extend((await session.execute(stmt)).all())
    owners, locked = await _lock_with_owners(session, due, skip_locked=skip_locked)
    moved = 0
    for booking in locked:
        owner = owners.get(booking.owner_booking_id) if booking.owner_booking_id else None
        # None: it changed while we waited for the lock
        action = await lifecycle.apply_due_action(
            session, booking, owner, now=now, automatic=automatic
        )
        moved += action is not None
    return moved


async def _lock_with_owners(
    session: AsyncSession,
    rows: Sequence[Row[uuid.UUID, uuid.UUID | None]],
    *,
    skip_locked: bool = False,
) -> tuple[dict[uuid.UUID, Booking], list[Booking]]:
    """Lock the classes of these bookings, then the bookings: the global lock order. With
    `skip_locked`, a booking whose class was skipped is skipped too."""
    if not rows:
        return {}, []
    owner_ids = [r[1] for r in rows if r[1] is not None]
    owners = {
        o.id: o for o in await queries.lock_bookings(session, owner_ids, skip_locked=skip_locked)
    }
    ids = [r[0] for r in rows if r[1] is None or r[1] in owners]
    return owners, await queries.lock_bookings(session, ids, skip_locked=skip_locked)
