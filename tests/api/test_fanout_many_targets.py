"""A fan-out to many targets keeps the order rule (services/fanout.py): a booking's event is
not born leased while an earlier one of that booking is queued to that target, for every
target. On SQLite the check is one statement whatever the number of targets and bookings
(services/sqlite_deliveries.py `_QUEUED`): here with more targets than the connection lets a
statement have variables."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.engine import session_factory
from slotgraph.db.models import Delivery
from slotgraph.services import fanout
from tests.api.conftest import Api, book_day

TARGETS = 40
VARIABLES = 32  # SQLite's limit on a statement's variables during the fan-outs: < TARGETS


@asynccontextmanager
async def few_variables(engine: AsyncEngine) -> AsyncIterator[None]:
    """SQLite: the process's one connection takes at most `VARIABLES` variables a statement
    while the block runs (SQLite's own limit is 32,766; an app's targets are not bounded by it)."""
    if engine.dialect.name != "sqlite":
        yield
        return
    async with engine.connect() as conn:
        raw: Any = (await conn.get_raw_connection()).driver_connection
    db: sqlite3.Connection = raw._conn
    was = db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, VARIABLES)
    try:
        yield
    finally:
        db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, was)


async def test_the_order_rule_holds_for_more_targets_than_a_statement_has_variables(
    api: Api, engine: AsyncEngine
) -> None:
    for i in range(TARGETS):
        r = await api.post("/v1/webhooks", {"url": f"https://example.com/hook/{i}"})
        assert r.status_code == 201, r.text
    resource, client = await api.resource(), await api.client()

    async def book(day: int) -> str:
        return await book_day(api, resource, client, day)

    sessions = session_factory(engine)
    lease = fanout.Lease("a", api.clock.now + timedelta(seconds=60), room=10 * TARGETS)

    async def fan_out() -> fanout.Dispatched:
        async with few_variables(engine), sessions() as session:
            return await fanout.dispatch(session, now=api.clock.now, lease=lease)

    first = await book(1)
    fanned = await fan_out()
    assert (fanned.events, len(fanned.claims), fanned.queued) == (1, TARGETS, 0)
    assert (await api.delete(f"/v1/bookings/{first}")).status_code == 200
    second = await book(2)
    fanned = await fan_out()
    # the cancel queued behind the confirmation still pending, to every target; the second
    # booking's confirmation born leased to every target
    assert (fanned.events, len(fanned.claims), fanned.queued) == (2, TARGETS, TARGETS)
    assert {json.loads(c.payload)["type"] for c in fanned.claims} == {"booking.confirmed"}
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Delivery.booking_id, Delivery.locked_by, Delivery.attempts).order_by(
                    Delivery.event_seq
                )
            )
        ).all()
    held = {(str(b), by, n) for b, by, n in rows}
    assert held == {(first, "a", 1), (first, None, 0), (second, "a", 1)}
    assert len(rows) == 3 * TARGETS
