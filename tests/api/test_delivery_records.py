"""Recording a batch of attempts: one transaction, and a lease that ran out is said, not hidden."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.engine import session_factory
from slotgraph.db.models import Delivery, DeliveryAttempt
from slotgraph.worker import Worker
from tests.api.conftest import TEST_SETTINGS, Api
from tests.receiver import Receiver, running_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


async def test_a_batch_is_recorded_with_each_outcome(
    api: Api, engine: AsyncEngine, receiver: Receiver
) -> None:
    r = await api.post("/v1/webhooks", {"url": receiver.url, "events": ["booking.confirmed"]})
    assert r.status_code == 201, r.text
    resource, client = await api.resource(), await api.client()
    for day in (3, 4, 5):
        await api.book(
            resource_id=resource["resource_id"],
            client_id=client["client_id"],
            start_time=f"2024-06-{day:02d}T10:00:00Z",
            end_time=f"2024-06-{day:02d}T11:00:00Z",
            notify=False,  # webhooks only: no email deliveries beside them
        )
    receiver.script = [200, 500, 200]  # in the order the receiver sees them
    worker = Worker(engine, TEST_SETTINGS, clock=api.clock, jitter=lambda: 0.0, worker_id="w")
    assert await worker.run_once() == 3 + 3  # three events dispatched, three sent
    async with session_factory(engine)() as session:
        statuses = sorted((await session.scalars(select(Delivery.status))).all())
        attempts = (await session.scalars(select(DeliveryAttempt))).all()
    assert statuses == ["pending", "succeeded", "succeeded"]
    assert sorted(a.status_code or 0 for a in attempts) == [200, 200, 500]
    assert [a.next_retry_at is not None for a in attempts if a.status_code == 500] == [True]
    assert {a.worker_id for a in attempts} == {"w"}


async def test_a_result_recorded_after_the_lease_ran_out_is_logged_with_the_delivery(
    api: Api, engine: AsyncEngine, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    r = await api.post("/v1/webhooks", {"url": receiver.url, "events": ["booking.confirmed"]})
    assert r.status_code == 201, r.text
    resource, client = await api.resource(), await api.client()
    await api.book(
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time="2024-06-03T10:00:00Z",
        end_time="2024-06-03T11:00:00Z",
        notify=False,  # webhooks only: no email deliveries beside them
    )
    sessions = session_factory(engine)
    slow = Worker(engine, TEST_SETTINGS, clock=api.clock, jitter=lambda: 0.0, worker_id="slow")
    other = Worker(engine, TEST_SETTINGS, clock=api.clock, jitter=lambda: 0.0, worker_id="other")
    caplog.set_level(logging.WARNING, logger="slotgraph.worker")
    # `slow`'s send is held at the receiver until `other` has sent and recorded (it used to be
    # answered after 0.5 s, which a loaded machine could let pass before `other` had claimed).
    receiver.hold()
    first = asyncio.create_task(slow.run_once(timers=False, calendars=False))
    try:
        for _ in range(3000):  # until `slow`'s send is at the receiver (at most 30 s)
            if receiver.arrived == 1 or first.done():
                break
            await asyncio.sleep(0.01)
        assert receiver.arrived == 1, first
        receiver.hold(after=1)  # the next one, `other`'s, is answered at once
        api.clock.advance(timedelta(seconds=TEST_SETTINGS.worker_lease_seconds + 1))
        await other.run_once(timers=False, calendars=False)  # takes it over, sends, records
    finally:
        receiver.release()
    await first  # `slow` now records a result for a lease it no longer holds

    async with sessions() as session:
        delivery = (await session.scalars(select(Delivery))).one()
        attempts = (await session.scalars(select(DeliveryAttempt))).all()
    assert (delivery.status, delivery.attempts, delivery.locked_by) == ("succeeded", 2, None)
    assert sorted((a.attempt, a.worker_id) for a in attempts) == [(1, "slow"), (2, "other")]
    assert len(receiver.requests) == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "slotgraph.worker"]
    assert [line for line in lines if str(delivery.id) in line] == [
        f"delivery {delivery.id}: sent (attempt 1) after its lease ran out; another worker may "
        "send it again"
    ]
