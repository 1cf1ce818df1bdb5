"""The fan-out of webhook targets is one transaction that runs nothing through SQLAlchemy's
execution (services/fanout.py): on PostgreSQL on the driver, on SQLite one call on aiosqlite's
thread from BEGIN IMMEDIATE to COMMIT (services/sqlite_deliveries.py `dispatch`). A write that
fails rolls all of it back and leaves the connection ready for the next transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.engine import session_factory
from slotgraph.db.models import Delivery, Event, UndispatchedEvent
from slotgraph.db.models.base import table_of
from slotgraph.services import fanout
from tests.api.conftest import Api, book_days


@contextmanager
def through_sqlalchemy(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements and transactions SQLAlchemy runs on `engine` while the block runs."""
    seen: list[str] = []

    def statement(conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        seen.append(sql)

    def began(conn: Any) -> None:
        seen.append("BEGIN")

    event.listen(engine.sync_engine, "before_cursor_execute", statement)
    event.listen(engine.sync_engine, "begin", began)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", statement)
        event.remove(engine.sync_engine, "begin", began)


async def test_a_fan_out_to_webhooks_runs_nothing_through_sqlalchemy(
    api: Api, engine: AsyncEngine
) -> None:
    r = await api.post("/v1/webhooks", {"url": "https://example.com/hook"})
    assert r.status_code == 201, r.text
    await book_days(api, 3)
    lease = fanout.Lease("w", api.clock.now + timedelta(minutes=1), room=2)
    with through_sqlalchemy(engine) as seen:
        async with session_factory(engine)() as session:
            fanned = await fanout.dispatch(session, now=api.clock.now, lease=lease)
    assert (fanned.events, len(fanned.claims), fanned.queued) == (3, 2, 1)
    assert seen == []
    with through_sqlalchemy(engine) as seen:
        async with session_factory(engine)() as session:
            assert await fanout.dispatch(session, now=api.clock.now, lease=lease) == (
                fanout.Dispatched()
            )
    assert seen == []


async def test_a_fan_out_whose_write_fails_writes_nothing_and_the_next_one_goes_through(
    api: Api, engine: AsyncEngine
) -> None:
    r = await api.post("/v1/webhooks", {"url": "https://example.com/hook"})
    assert r.status_code == 201, r.text
    target = uuid.UUID(r.json()["webhook_id"])
    await book_days(api, 2)
    sessions = session_factory(engine)
    now = api.clock.now
    async with engine.begin() as conn:
        last = (await conn.execute(select(Event).order_by(Event.seq.desc()).limit(1))).one()
        # a delivery of the last event to the target already: the fan-out's INSERT collides
        await conn.execute(
            insert(table_of(Delivery)).values(
                id=last.id,
                app_id=last.app_id,
                endpoint_id=target,
                event_id=last.id,
                event_seq=last.seq,
                booking_id=None,
                status="failed",
                attempts=0,
                next_attempt_at=None,
                created_at=now,
                updated_at=now,
            )
        )
    lease = fanout.Lease("w", now + timedelta(minutes=1), room=10)
    with pytest.raises((IntegrityError, asyncpg.UniqueViolationError)):
        async with sessions() as session:
            await fanout.dispatch(session, now=now, lease=lease)
    async with engine.begin() as conn:
        assert await conn.scalar(select(func.count()).select_from(Delivery)) == 1
        assert await conn.scalar(select(func.count()).select_from(UndispatchedEvent)) == 2
        await conn.execute(Delivery.__table__.delete())
    async with sessions() as session:
        fanned = await fanout.dispatch(session, now=now, lease=lease)
    assert (fanned.events, len(fanned.claims)) == (2, 2)


async def test_an_event_an_older_worker_fanned_out_is_not_fanned_out_again(
    api: Api, engine: AsyncEngine
) -> None:
    """During a rolling upgrade past migration 0019 a worker of the older version marks the
    events it fans out (`dispatched_at`) and leaves them queued: a new worker takes them off the
    queue without writing their deliveries again (which collide with the older one's and fail
    the whole fan-out, every time it takes them)."""
    r = await api.post("/v1/webhooks", {"url": "https://example.com/hook"})
    assert r.status_code == 201, r.text
    target = uuid.UUID(r.json()["webhook_id"])
    await book_days(api, 3)
    now = api.clock.now
    async with engine.begin() as conn:  # the older worker's fan-out of the first event
        first = (await conn.execute(select(Event).order_by(Event.seq).limit(1))).one()
        await conn.execute(
            Event.__table__.update().where(Event.seq == first.seq).values(dispatched_at=now)
        )
        await conn.execute(
            insert(table_of(Delivery)).values(
                **{"id": uuid.uuid4(), "app_id": first.app_id, "endpoint_id": target},
                **{"event_id": first.id, "event_seq": first.seq, "booking_id": first.booking_id},
                **{"status": "succeeded", "attempts": 1, "next_attempt_at": None},
                **{"created_at": now, "updated_at": now},
            )
        )
    lease = fanout.Lease("w", now + timedelta(minutes=1), room=10)
    async with session_factory(engine)() as session:
        fanned = await fanout.dispatch(session, now=now, lease=lease)
    assert (fanned.events, len(fanned.claims)) == (2, 2)
    assert first.id not in {c.event_id for c in fanned.claims}
    async with engine.begin() as conn:
        assert await conn.scalar(select(func.count()).select_from(UndispatchedEvent)) == 0
        assert await conn.scalar(select(func.count()).select_from(Delivery)) == 3
