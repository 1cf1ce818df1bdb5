"""The worker's slow-target rule at its waiting claims (worker_slots.py, docs/webhooks.md): a
claim of a blocked target waits, keeping its place and its lease, and starts once a send of
its target ends; one whose lease ran out while it waited is dropped."""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta

from slotgraph.services.deliveries import Claim
from slotgraph.worker_slots import SlowTargets

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def claim(target: uuid.UUID) -> Claim:
    return Claim(uuid.uuid4(), 1, uuid.uuid4(), target, "{}", "http://example.com/hook", [])


async def test_a_blocked_target_s_claim_waits_with_its_lease_and_starts_after_its_send() -> None:
    slow = SlowTargets(after=0.0, most=1)  # slow at once; one slow send blocks its target
    target, other = uuid.uuid4(), uuid.uuid4()
    turned_slow = asyncio.Event()
    send = asyncio.get_running_loop().create_future()  # a send in flight, never answered
    slow.started(send, target, turned_slow.set)  # type: ignore[arg-type]
    await turned_slow.wait()
    assert slow.blocked() == [target]

    blocked, free = claim(target), claim(other)
    ready = deque([blocked, free])
    until = {
        blocked.delivery_id: NOW + timedelta(minutes=1),
        free.delivery_id: NOW + timedelta(minutes=1),
    }
    assert slow.take(ready, 2, until, NOW) == ([free], [])
    assert list(ready) == [blocked]
    assert until == {blocked.delivery_id: NOW + timedelta(minutes=1)}  # its lease, kept

    slow.ended(send, target)  # type: ignore[arg-type]
    assert slow.blocked() == []
    assert slow.take(ready, 2, until, NOW) == ([blocked], [])
    assert (list(ready), until) == ([], {})


async def test_a_claim_whose_lease_ran_out_while_it_waited_is_dropped() -> None:
    slow = SlowTargets(after=60.0, most=1)
    late, fresh = claim(uuid.uuid4()), claim(uuid.uuid4())
    ready = deque([late, fresh])
    until = {late.delivery_id: NOW, fresh.delivery_id: NOW + timedelta(seconds=1)}
    assert slow.take(ready, 2, until, NOW) == ([fresh], [late])
    assert (list(ready), until) == ([], {})
