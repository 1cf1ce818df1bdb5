"""The running worker keeps its send slots full: a slow receiver holds one slot, not a batch."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.engine import session_factory
from slotgraph.db.models import Delivery, DeliveryAttempt
from slotgraph.worker import Worker
from tests.api.conftest import TEST_SETTINGS, Api
from tests.receiver import Receiver, running_receiver

BATCH = 4  # concurrent sends: the fast endpoint gets three times as many events


@pytest.fixture
def slow() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
def fast() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


async def test_a_slow_endpoint_does_not_stall_deliveries_to_a_fast_one(
    api: Api, engine: AsyncEngine, slow: Receiver, fast: Receiver
) -> None:
    r = await api.post("/v1/webhooks", {"url": slow.url, "events": ["webhook.test"]})
    assert r.status_code == 201, r.text
    slow_id = uuid.UUID(r.json()["webhook_id"])
    assert (await api.post(f"/v1/webhooks/{slow_id}/test", {})).status_code == 202
    r = await api.post("/v1/webhooks", {"url": fast.url, "events": ["booking.confirmed"]})
    assert r.status_code == 201, r.text
    fast_id = uuid.UUID(r.json()["webhook_id"])
    resource, client = await api.resource(), await api.client()
    for day in range(1, 3 * BATCH + 1):
        await api.book(
            resource_id=resource["resource_id"],
            client_id=client["client_id"],
            start_time=f"2024-06-{day:02d}T10:00:00Z",
            end_time=f"2024-06-{day:02d}T11:00:00Z",
            notify=False,  # webhooks only
        )
    slow.hold()  # the slow endpoint's request is answered only when the test says so
    settings = TEST_SETTINGS.model_copy(update={"worker_batch": BATCH})
    worker = Worker(engine, settings, clock=api.clock, jitter=lambda: 0.0, worker_id="w")
    sessions = session_factory(engine)

    async def counts() -> tuple[int, int]:
        """(the fast endpoint's deliveries that succeeded, attempts logged for the slow one)"""
        async with sessions() as session:
            succeeded = await session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.endpoint_id == fast_id, Delivery.status == "succeeded")
            )
            slow_attempts = await session.scalar(
                select(func.count())
                .select_from(DeliveryAttempt)
                .where(DeliveryAttempt.endpoint_id == slow_id)
            )
        return succeeded or 0, slow_attempts or 0

    task = asyncio.create_task(worker.run())
    try:
        # Until every fast delivery is recorded, or the slow send ends (a 15-second timeout):
        # a worker that waits for whole batches records the slow one first, or not at all.
        for _ in range(600):
            succeeded, slow_attempts = await counts()
            if succeeded == 3 * BATCH or slow_attempts:
                break
            await asyncio.sleep(0.05)
        assert (succeeded, slow_attempts) == (3 * BATCH, 0)
        assert slow.arrived == 1  # the slow request is in flight all along
        assert len(fast.requests) == 3 * BATCH

        slow.release()
        for _ in range(600):
            if (await counts())[1]:
                break
            await asyncio.sleep(0.05)
    finally:
        slow.release()
        await worker.stop(task)
    async with sessions() as session:
        statuses = (
            await session.execute(
                select(Delivery.endpoint_id, Delivery.status, Delivery.attempts).where(
                    Delivery.endpoint_id == slow_id
                )
            )
        ).all()
    assert [tuple(row) for row in statuses] == [(slow_id, "succeeded", 1)]
