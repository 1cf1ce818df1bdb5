"""One app's slow receiver does not hold up another app's webhooks (docs/webhooks.md, "Slow
receivers"): its sends leave the worker's send slots once slow, and it gets no more while slow."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.engine import session_factory
from slotgraph.db.models import Delivery
from slotgraph.webhooks.sender import TIMEOUT_SECONDS
from slotgraph.worker import Worker
from tests.api.conftest import TEST_SETTINGS, Api
from tests.receiver import Receiver, running_receiver

BATCH = 8  # send slots: app A's backlog is three times as many events


@pytest.fixture
def held() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
def other() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


async def book(api: Api, n: int) -> None:
    """`n` bookings from 1 June 2024, eight a day: one `booking.confirmed` event each."""
    resource, client = await api.resource(), await api.client()
    for i in range(n):
        day, hour = 1 + i // 8, 8 + i % 8
        await api.book(
            resource_id=resource["resource_id"],
            client_id=client["client_id"],
            start_time=f"2024-06-{day:02d}T{hour:02d}:00:00Z",
            end_time=f"2024-06-{day:02d}T{hour:02d}:30:00Z",
            notify=False,  # webhooks only
        )


async def until(check: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    """Poll `check()` every 20 ms for up to `seconds`; whether it held."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


async def test_one_app_s_held_receiver_does_not_delay_another_app_s_webhook(
    api: Api, other_api: Api, engine: AsyncEngine, held: Receiver, other: Receiver
) -> None:
    r = await api.post("/v1/webhooks", {"url": held.url, "events": ["booking.confirmed"]})
    assert r.status_code == 201, r.text
    held_id = uuid.UUID(r.json()["webhook_id"])
    await book(api, 3 * BATCH)  # app A's backlog: 24 events, more than the send slots
    r = await other_api.post("/v1/webhooks", {"url": other.url, "events": ["booking.confirmed"]})
    assert r.status_code == 201, r.text
    held.hold()  # every request to A's receiver waits until the test releases it
    settings = TEST_SETTINGS.model_copy(update={"worker_batch": BATCH})
    worker = Worker(engine, settings, clock=api.clock, jitter=lambda: 0.0, worker_id="w")
    task = asyncio.create_task(worker.run())

    async def all_slots_held() -> bool:
        return held.arrived >= BATCH

    async def other_arrived() -> bool:
        return len(other.requests) == 1

    try:
        # A's first sends take every slot, and are held (up to the 15-second send timeout).
        assert await until(all_slots_held, 10.0), held.arrived
        started = time.monotonic()
        await book(other_api, 1)  # app B's one event, behind A's backlog
        assert await until(other_arrived, TIMEOUT_SECONDS), "B's webhook never came"
        waited = time.monotonic() - started
        assert waited < 5.0, f"B's webhook came after {waited:.1f} s"
        assert held.arrived == BATCH  # a slow receiver gets no more sends while slow
        held.release()
        sessions = session_factory(engine)

        async def a_all_sent() -> bool:
            async with sessions() as session:
                statuses = (
                    await session.scalars(
                        select(Delivery.status).where(Delivery.endpoint_id == held_id)
                    )
                ).all()
            return statuses == ["succeeded"] * (3 * BATCH)

        # Released, the rest of A's backlog is sent: at least once each, none given up.
        assert await until(a_all_sent, 2 * TIMEOUT_SECONDS)
    finally:
        held.release()
        await worker.stop(task)
    assert len({r.json["data"]["booking"]["booking_id"] for r in held.requests}) == 3 * BATCH
