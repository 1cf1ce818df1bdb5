"""A claim while a target is skipped as slow (worker_slots.py) takes the other targets' due
deliveries, in order, and does not read the skipped target's backlog to find them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.engine import session_factory
from slotgraph.db.models import Delivery, WebhookEndpoint
from slotgraph.db.models.base import table_of
from slotgraph.services import deliveries, fanout
from tests.api.conftest import Api, book_days, sqlite_steps

BOOKINGS = 3  # the other target's due deliveries


async def targets_and_backlog(
    api: Api, engine: AsyncEngine, backlog: int
) -> tuple[uuid.UUID, uuid.UUID]:
    """A target with `backlog` deliveries due an hour ago (to be skipped), and another one with
    a delivery due now for each of `BOOKINGS` bookings. Returns their ids (skipped, other)."""
    r = await api.post("/v1/webhooks", {"url": "https://example.com/slow", "events": ["x.none"]})
    assert r.status_code == 201, r.text
    slow = uuid.UUID(r.json()["webhook_id"])
    r = await api.post("/v1/webhooks", {"url": "https://example.com/fast"})
    assert r.status_code == 201, r.text
    fast = uuid.UUID(r.json()["webhook_id"])
    await book_days(api, BOOKINGS)
    async with session_factory(engine)() as session:
        assert (await fanout.dispatch(session, now=api.clock.now)).queued == BOOKINGS
    at = api.clock.now - timedelta(hours=1)
    async with engine.begin() as conn:
        app_id = await conn.scalar(select(WebhookEndpoint.app_id).where(WebhookEndpoint.id == slow))
        rows = [
            {
                **{"id": uuid.uuid4(), "app_id": app_id, "endpoint_id": slow},
                **{"event_id": uuid.uuid4(), "event_seq": 1_000_000 + i, "booking_id": None},
                **{"status": "pending", "attempts": 0, "next_attempt_at": at},
                **{"locked_until": None, "locked_by": None, "created_at": at, "updated_at": at},
            }
            for i in range(backlog)
        ]
        await conn.execute(insert(table_of(Delivery)), rows)
    return slow, fast


async def claim_skipping(api: Api, engine: AsyncEngine, skipped: uuid.UUID) -> list[Any]:
    """One claim of up to 10 deliveries that skips `skipped`, as a worker's would."""
    async with session_factory(engine)() as session:
        return await deliveries.claim(
            session,
            now=api.clock.now,
            worker_id="w",
            lease=timedelta(minutes=1),
            limit=10,
            skip=[skipped],
        )


async def test_a_claim_skipping_a_target_takes_the_others_due_deliveries(
    api: Api, engine: AsyncEngine
) -> None:
    slow, fast = await targets_and_backlog(api, engine, 500)
    claims = await claim_skipping(api, engine, slow)
    assert [c.endpoint_id for c in claims] == [fast] * BOOKINGS
    assert len({c.event_id for c in claims}) == BOOKINGS


@contextmanager
def claims_sent(engine: AsyncEngine) -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    """PostgreSQL: the claim statements the driver runs meanwhile, with their arguments."""
    sent: list[tuple[str, tuple[Any, ...]]] = []

    def logged(record: Any) -> None:
        if "UPDATE deliveries SET attempts" in record.query:
            sent.append((record.query, record.args))

    def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        dbapi_conn.driver_connection.add_query_logger(logged)

    def checkin(dbapi_conn: Any, _record: Any) -> None:
        if dbapi_conn is not None:
            dbapi_conn.driver_connection.remove_query_logger(logged)

    event.listen(engine.sync_engine.pool, "checkout", checkout)
    event.listen(engine.sync_engine.pool, "checkin", checkin)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine.pool, "checkout", checkout)
        event.remove(engine.sync_engine.pool, "checkin", checkin)


async def buffers_read(engine: AsyncEngine, statement: str, args: tuple[Any, ...]) -> int:
    """PostgreSQL: the buffers `statement` touches, under EXPLAIN (ANALYZE, BUFFERS), rolled
    back."""
    async with engine.connect() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        transaction = driver.transaction()
        await transaction.start()
        try:
            explained = await driver.fetchval(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, *args
            )
        finally:
            await transaction.rollback()
    plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
    return int(plan["Shared Hit Blocks"] + plan["Shared Read Blocks"])


async def test_sqlite_a_claim_skipping_a_target_does_not_read_its_backlog(
    api: Api, engine: AsyncEngine
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's instruction count; PostgreSQL's buffers below")
    slow, fast = await targets_and_backlog(api, engine, 5_000)
    async with sqlite_steps(engine) as steps:
        claims = await claim_skipping(api, engine, slow)
    assert [c.endpoint_id for c in claims] == [fast] * BOOKINGS
    # Reading past the backlog on ix_deliveries_due: 354 steps of 100 instructions; per
    # target: 7.
    assert steps[0] < 30, steps


async def test_a_claim_skipping_a_target_does_not_read_its_backlog(
    api: Api, engine: AsyncEngine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("EXPLAIN (ANALYZE, BUFFERS) is PostgreSQL's")
    slow, fast = await targets_and_backlog(api, engine, 20_000)
    # VACUUM too, not only ANALYZE: every earlier test's deliveries, deleted between tests, leave
    # dead entries in the indexes the claim steps through (autovacuum may be off, or behind),
    # and which tests ran before on this process is the scheduler's choice: 20,000 of them made
    # this claim read 201 buffers.
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.exec_driver_sql("VACUUM (ANALYZE) deliveries")
    with claims_sent(engine) as sent:
        claims = await claim_skipping(api, engine, slow)
    assert [c.endpoint_id for c in claims] == [fast] * BOOKINGS
    assert len(sent) == 1
    # The same statement again (it takes nothing now: the others' are leased). On
    # ix_deliveries_due alone it read past the backlog, every page of it: 500 buffers at
    # 20,000; per target, 20, whatever the backlog.
    buffers = await buffers_read(engine, *sent[0])
    assert buffers < 100, buffers
