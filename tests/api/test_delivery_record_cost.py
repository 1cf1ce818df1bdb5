"""Recording a batch of sent deliveries costs the batch, not the table: the deliveries kept
(every one ever made, succeeded or failed) are not read to find the batch's."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy import text as sa_text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from slotgraph.db.engine import session_factory
from slotgraph.db.models import Delivery, WebhookEndpoint
from slotgraph.db.models.base import table_of
from slotgraph.domain.deliveries import Outcome
from slotgraph.services import deliveries, fanout
from tests.api.conftest import Api, book_days, sqlite_steps

KEPT = 5_000  # deliveries of the past, succeeded
BATCH = 4  # recorded at once


async def test_a_record_does_not_read_the_deliveries_kept(api: Api, engine: AsyncEngine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's instruction count; PostgreSQL joins the batch on the key")
    r = await api.post("/v1/webhooks", {"url": "https://example.com/hook"})
    assert r.status_code == 201, r.text
    target = uuid.UUID(r.json()["webhook_id"])
    await book_days(api, BATCH)
    now = api.clock.now
    sessions = session_factory(engine)
    async with sessions() as session:
        lease = fanout.Lease("w", now + timedelta(minutes=1), room=10)
        claims = (await fanout.dispatch(session, now=now, lease=lease)).claims
    assert len(claims) == BATCH
    async with engine.begin() as conn:
        app_id = await conn.scalar(
            select(WebhookEndpoint.app_id).where(WebhookEndpoint.id == target)
        )
        past = now - timedelta(days=1)
        rows = [
            {
                **{"id": uuid.uuid4(), "app_id": app_id, "endpoint_id": target},
                **{"event_id": uuid.uuid4(), "event_seq": 1_000_000 + i, "booking_id": None},
                **{"status": "succeeded", "attempts": 1, "next_attempt_at": None},
                **{"locked_until": None, "locked_by": None, "created_at": past, "updated_at": past},
            }
            for i in range(KEPT)
        ]
        await conn.execute(insert(table_of(Delivery)), rows)
    async with sqlite_steps(engine) as steps, sessions() as session:
        ok = Outcome(status_code=200, error=None, duration_ms=5, response_body=None)
        lost = await deliveries.finish(
            session,
            results=[(c, ok) for c in claims],
            now=now,
            worker_id="w",
            jitter=lambda: 0.0,
        )
    assert lost == []
    async with sessions() as session:
        statuses = await session.scalars(
            select(Delivery.status).where(Delivery.id.in_([c.delivery_id for c in claims]))
        )
    assert list(statuses) == ["succeeded"] * BATCH
    # Reading past the kept rows: 155 steps of 100 instructions; the batch's own work: 6.
    assert steps[0] < 30, steps


# How many times each table was read in the transaction so far (PostgreSQL's own counters),
# and how many rows of `events` were updated.
_READS = sa_text(
    "SELECT relname, seq_scan + coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables"
    " WHERE relname IN ('webhook_endpoints', 'deliveries')"
    " UNION ALL SELECT 'events updated', n_tup_upd FROM pg_stat_xact_user_tables"
    " WHERE relname = 'events'"
)


def _minus(counts: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {table: n - before.get(table, 0) for table, n in counts.items()}


async def test_a_fan_out_and_its_record_check_no_row_they_point_at(
    api: Api, engine: AsyncEngine
) -> None:
    """The fan-out writes its deliveries and the record its attempts without a lookup per row
    of what they point at (the target, the delivery: migration 0018, ADR 0016): the fan-out
    reads the targets when it reads them, not once more a delivery, and the record looks the
    deliveries of its batch up to settle them (one scan, or one a delivery at most) and the
    targets once (a success ends a failing streak). A foreign key's check would read the
    target for every delivery and every attempt, and the delivery again for its attempt. The
    fan-out updates no event (migration 0019)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's per-transaction table counters")
    r = await api.post("/v1/webhooks", {"url": "https://example.com/hook"})
    assert r.status_code == 201, r.text
    await book_days(api, BATCH)
    now = api.clock.now
    async with engine.connect() as conn:
        await conn.begin()
        async with AsyncSession(bind=conn) as session:
            lease = fanout.Lease("w", now + timedelta(minutes=1), room=10)
            # counted from here: the counters also hold the connection's earlier transactions
            # until the backend reports them (at most once a second, when idle)
            before = dict((await conn.execute(_READS)).all())
            claims = (await fanout.dispatch(session, now=now, lease=lease)).claims
            assert len(claims) == BATCH
            fanned = _minus(dict((await conn.execute(_READS)).all()), before)
            ok = Outcome(status_code=200, error=None, duration_ms=5, response_body=None)
            lost = await deliveries.finish(
                session,
                results=[(c, ok) for c in claims],
                now=now,
                worker_id="w",
                jitter=lambda: 0.0,
            )
            assert lost == []
            recorded = _minus(dict((await conn.execute(_READS)).all()), before)
        await conn.rollback()
    assert fanned["webhook_endpoints"] < BATCH, fanned  # the targets' reads, not one a delivery
    # the events come off their queue (events_undispatched, ADR 0017): no new version of an
    # event's row (its payload, four index entries) a delivery
    assert fanned["events updated"] == 0, fanned
    settling = recorded["deliveries"] - fanned.get("deliveries", 0)
    assert settling <= BATCH, (fanned, recorded)  # the batch's rows found, each at most once
    assert recorded["webhook_endpoints"] - fanned["webhook_endpoints"] < BATCH, (fanned, recorded)
