"""The running worker keeps its send slots full: a slow receiver holds one slot, not a batch."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.engine import session_factory
from slotgraph.db.models import Delivery, DeliveryAttempt
from slotgraph.services import fanout
from slotgraph.worker import Worker
from tests.api.conftest import TEST_SETTINGS, Api, book_day, book_days
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
    await book_days(api, 3 * BATCH)
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


async def test_a_graceful_stop_gives_back_the_claims_still_waiting_for_a_slot(
    api: Api, engine: AsyncEngine, slow: Receiver
) -> None:
    # The running worker leases ahead: its fan-out hands up to 4 x WORKER_BATCH deliveries,
    # born leased, to the send slots (here all six: two on the wire, four waiting). Stopped, it
    # gives back both the sends it cut off and the claims it never sent: their attempt is not
    # counted, and nothing stays leased.
    r = await api.post("/v1/webhooks", {"url": slow.url, "events": ["booking.confirmed"]})
    assert r.status_code == 201, r.text
    await book_days(api, 6)
    slow.hold()  # every request waits: the first two sends hold both slots
    settings = TEST_SETTINGS.model_copy(update={"worker_batch": 2, "worker_shutdown_seconds": 0.5})
    worker = Worker(engine, settings, clock=api.clock, jitter=lambda: 0.0, worker_id="w")
    sessions = session_factory(engine)

    async def leased() -> int:
        async with sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.locked_by == "w")
            )
        return count or 0

    task = asyncio.create_task(worker.run())
    try:
        for _ in range(600):
            if slow.arrived == 2 and await leased() == 6:
                break
            await asyncio.sleep(0.05)
        assert (slow.arrived, await leased()) == (2, 6)  # two on the wire, four waiting
    finally:
        await worker.stop(task)
        slow.release()
    async with sessions() as session:
        rows = (await session.execute(select(Delivery.status, Delivery.attempts))).all()
        logged = await session.scalar(select(func.count()).select_from(DeliveryAttempt))
    assert sorted(tuple(row) for row in rows) == [("pending", 0)] * 6
    assert (await leased(), logged, slow.arrived) == (0, 0, 2)


async def test_a_delivery_born_leased_to_a_worker_that_died_is_sent_by_another_after_the_lease(
    api: Api, engine: AsyncEngine, fast: Receiver
) -> None:
    # Worker "a" fans a booking's two events out (born leased: the first one only, since the
    # second waits behind it), then dies before sending. Worker "b" leaves the leased one alone
    # until the lease runs out, then sends both, in order.
    r = await api.post("/v1/webhooks", {"url": fast.url, "events": ["booking.*"]})
    assert r.status_code == 201, r.text
    resource, client = await api.resource(), await api.client()
    booked = await api.book(
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time="2024-06-01T10:00:00Z",
        end_time="2024-06-01T11:00:00Z",
        notify=False,
    )
    assert (await api.delete(f"/v1/bookings/{booked['booking_id']}")).status_code == 200
    sessions = session_factory(engine)
    lease = fanout.Lease("a", api.clock.now + timedelta(seconds=60), room=32)
    async with sessions() as session:
        fanned = await fanout.dispatch(session, now=api.clock.now, lease=lease)
    assert (fanned.events, len(fanned.claims), fanned.queued) == (2, 1, 1)

    async def rows() -> list[tuple[str, int, str | None]]:
        async with sessions() as session:
            found = await session.execute(
                select(Delivery.status, Delivery.attempts, Delivery.locked_by).order_by(
                    Delivery.event_seq
                )
            )
            return [tuple(row) for row in found]  # type: ignore[misc]

    assert await rows() == [("pending", 1, "a"), ("pending", 0, None)]
    b = Worker(engine, TEST_SETTINGS, clock=api.clock, jitter=lambda: 0.0, worker_id="b")
    assert await b.run_once(timers=False) == 0  # a's lease holds: nothing for b to do
    assert fast.requests == []
    api.clock.advance(timedelta(seconds=61))
    for _ in range(5):
        await b.run_once(timers=False)
    assert [r.json["type"] for r in fast.requests] == ["booking.confirmed", "booking.cancelled"]
    # The first one's attempt 1 was counted when it was born leased, and never made.
    assert await rows() == [("succeeded", 2, None), ("succeeded", 1, None)]
    async with sessions() as session:
        logged = (
            await session.execute(select(DeliveryAttempt.attempt, DeliveryAttempt.worker_id))
        ).all()
    assert sorted(tuple(row) for row in logged) == [(1, "b"), (2, "b")]


async def test_a_claim_whose_lease_ran_out_while_it_waited_is_not_sent_again(
    api: Api, engine: AsyncEngine, slow: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    # Worker "a" (one slot) leases three deliveries ahead: one on the wire, held by the
    # receiver, two waiting for the slot. The leases run out, and worker "b" takes all three
    # over and delivers them. The one a had on the wire arrives a second time when the receiver
    # answers it (it was sent before its lease ran out: at least once); the two that waited
    # are b's by then, and a must not send them (before, it sent each a second time).
    r = await api.post("/v1/webhooks", {"url": slow.url, "events": ["booking.confirmed"]})
    assert r.status_code == 201, r.text
    await book_days(api, 3)
    slow.hold()
    settings = TEST_SETTINGS.model_copy(update={"worker_batch": 1})
    a = Worker(engine, settings, clock=api.clock, jitter=lambda: 0.0, worker_id="a")
    sessions = session_factory(engine)

    async def statuses() -> list[tuple[str, str | None]]:
        async with sessions() as session:
            found = await session.execute(
                select(Delivery.status, Delivery.locked_by).order_by(Delivery.event_seq)
            )
            return [tuple(row) for row in found]  # type: ignore[misc]

    task = asyncio.create_task(a.run())
    try:
        for _ in range(600):
            if slow.arrived == 1 and await statuses() == [("pending", "a")] * 3:
                break
            await asyncio.sleep(0.05)
        assert (slow.arrived, await statuses()) == (1, [("pending", "a")] * 3)
        api.clock.advance(timedelta(seconds=settings.worker_lease_seconds + 1))
        slow.hold(after=3)  # b's three sends are answered; a's stays held
        b = Worker(engine, TEST_SETTINGS, clock=api.clock, jitter=lambda: 0.0, worker_id="b")
        await b.run_once(timers=False)
        assert await statuses() == [("succeeded", None)] * 3
        slow.release()  # a's send is answered, and recorded as lost: its slot was free before
        for _ in range(600):
            if "after its lease ran out" in caplog.text:
                break
            await asyncio.sleep(0.05)
        assert "after its lease ran out" in caplog.text
    finally:
        slow.release()
        await a.stop(task)
    async with sessions() as session:
        first = await session.scalar(
            select(Delivery.booking_id).order_by(Delivery.event_seq).limit(1)
        )
    sent = [event["data"]["booking"]["booking_id"] for event in slow.events()]
    assert sent.count(str(first)) == 2, sent  # the one on the wire: by a, then by b
    assert sorted(sent.count(b) for b in set(sent) - {str(first)}) == [1, 1], sent  # once each


async def test_a_booking_s_event_is_not_born_leased_while_an_earlier_one_is_queued(
    api: Api, engine: AsyncEngine, fast: Receiver
) -> None:
    # Two fan-outs: the first leases the booking's confirmation; the second finds its
    # cancellation with the confirmation still pending, so queues it behind (not leased), while
    # another booking's event in the same fan-out is leased.
    r = await api.post("/v1/webhooks", {"url": fast.url, "events": ["booking.*"]})
    assert r.status_code == 201, r.text
    resource, client = await api.resource(), await api.client()

    async def book(day: int) -> str:
        return await book_day(api, resource, client, day)

    sessions = session_factory(engine)
    lease = fanout.Lease("a", api.clock.now + timedelta(seconds=60), room=32)

    async def fan_out() -> list[str]:
        async with sessions() as session:
            fanned = await fanout.dispatch(session, now=api.clock.now, lease=lease)
        return [json.loads(c.payload)["type"] for c in fanned.claims]

    first = await book(1)
    assert await fan_out() == ["booking.confirmed"]
    assert (await api.delete(f"/v1/bookings/{first}")).status_code == 200
    await book(2)
    assert await fan_out() == ["booking.confirmed"]  # the second booking's, not the cancel
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Delivery.booking_id, Delivery.locked_by).order_by(Delivery.event_seq)
            )
        ).all()
    assert [(str(b), by) for b, by in rows][:2] == [(first, "a"), (first, None)]
    assert rows[2][1] == "a"


@asynccontextmanager
async def _heartbeats_refused(engine: AsyncEngine) -> AsyncIterator[None]:
    """The database refuses the worker's heartbeat (a trigger), as a broken table would."""
    if engine.dialect.name == "postgresql":
        make = [
            "CREATE FUNCTION refuse_beat() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'heartbeats refused'; END $$",
            "CREATE TRIGGER refuse_beat BEFORE INSERT OR UPDATE ON worker_heartbeats "
            "FOR EACH ROW EXECUTE FUNCTION refuse_beat()",
        ]
        undo = ["DROP TRIGGER refuse_beat ON worker_heartbeats", "DROP FUNCTION refuse_beat()"]
    else:
        make = [
            "CREATE TRIGGER refuse_beat BEFORE INSERT ON worker_heartbeats "
            "BEGIN SELECT RAISE(ABORT, 'heartbeats refused'); END"
        ]
        undo = ["DROP TRIGGER refuse_beat"]
    async with engine.begin() as conn:
        for statement in make:
            await conn.exec_driver_sql(statement)
    try:
        yield
    finally:
        async with engine.begin() as conn:
            for statement in undo:
                await conn.exec_driver_sql(statement)


async def test_deliveries_born_leased_are_sent_though_the_housekeeping_after_the_fan_out_fails(
    api: Api, engine: AsyncEngine, fast: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    # The fan-out commits three deliveries born leased to this worker; the heartbeat in the same
    # round fails. They are sent at once, not when their 60-second lease runs out (the test's
    # clock stands still: never), and the failure is still said.
    r = await api.post("/v1/webhooks", {"url": fast.url, "events": ["booking.confirmed"]})
    assert r.status_code == 201, r.text
    await book_days(api, 3)
    worker = Worker(engine, TEST_SETTINGS, clock=api.clock, jitter=lambda: 0.0, worker_id="w")
    async with _heartbeats_refused(engine):
        task = asyncio.create_task(worker.run())
        try:
            for _ in range(200):  # up to 10 s
                if len(fast.requests) == 3:
                    break
                await asyncio.sleep(0.05)
        finally:
            await worker.stop(task)
    assert len(fast.requests) == 3
    said = [r for r in caplog.records if r.name == "slotgraph.worker" and r.levelname != "INFO"]
    assert said, caplog.text


async def test_run_once_sends_what_it_fanned_out_before_a_failing_chore_raises(
    api: Api, engine: AsyncEngine, fast: Receiver
) -> None:
    # One cycle (`run_once`, what the tests and `bench` drive): its fan-out commits three
    # deliveries leased to it, then the heartbeat fails. The error still reaches the caller, but
    # the three are sent and recorded first, not left leased for 60 s (the clock stands still).
    r = await api.post("/v1/webhooks", {"url": fast.url, "events": ["booking.confirmed"]})
    assert r.status_code == 201, r.text
    await book_days(api, 3)
    worker = Worker(engine, TEST_SETTINGS, clock=api.clock, jitter=lambda: 0.0, worker_id="w")
    async with _heartbeats_refused(engine):
        with pytest.raises(Exception, match="heartbeats refused"):
            await worker.run_once(calendars=False)
    assert len(fast.requests) == 3
    async with session_factory(engine)() as session:
        statuses = (await session.scalars(select(Delivery.status))).all()
    assert statuses == ["succeeded"] * 3  # docs/webhooks.md: a delivery answered 2xx
