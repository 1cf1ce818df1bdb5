"""Slow targets: which of the worker's sends are slow, and which targets get no new send.

A send in flight `worker_slow_send_seconds` is slow: it stops holding one of the `WORKER_BATCH`
send slots (it keeps its connection; up to `SLOW_ROOM` x `WORKER_BATCH` slow sends at once,
so that a few tenants turning slow together are absorbed too), so another
target's delivery can start. A target with a slow send and `worker_slow_target_sends` in flight
is blocked: none of its claims waiting for a slot starts, the claim skips its deliveries and
the fan-out leases none of its first attempts, until a send of it ends. A receiver that holds
every request therefore holds at most the slots of one wave for a couple of seconds, not the
15-second timeout of every wave of its backlog (ADR 0003, "Slow receivers").
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, deque
from collections.abc import Callable
from datetime import datetime

from slotgraph.domain.deliveries import Outcome
from slotgraph.services.deliveries import Claim

SLOW_ROOM = 3  # x WORKER_BATCH: slow sends in flight at most, on top of the slots


class SlowTargets:
    def __init__(self, *, after: float, most: int) -> None:
        self.after = after  # seconds in flight before a send is slow
        self.most = most  # a slow target's sends in flight at most (none new past it)
        self._sends: Counter[uuid.UUID] = Counter()  # target: its sends in flight
        self._slow: Counter[uuid.UUID] = Counter()  # target: its slow sends in flight
        # Sends in flight, not slow yet, and when each turns slow, in the order they started
        # (so in the order they turn slow: `after` is the same for all). One timer, for the
        # first of them still in flight, rather than a timer per send (armed, then cancelled
        # at almost every send: 1.7 us a send, and the loop's heap full of cancelled ones).
        # (Numbered, so that `_order` keeps no ended send's task and answer alive.)
        self._live: dict[asyncio.Task[Outcome], int] = {}
        self._live_numbers: dict[int, asyncio.Task[Outcome]] = {}
        self._order: deque[tuple[float, int, uuid.UUID, Callable[[], None]]] = deque()
        self._numbered = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._slowed: set[asyncio.Task[Outcome]] = set()

    @property
    def slow_sends(self) -> int:
        return len(self._slowed)

    def started(
        self, task: asyncio.Task[Outcome], target: uuid.UUID, woken: Callable[[], None]
    ) -> None:
        """A send started: it is slow `after` seconds from now unless it ended (`woken` then:
        a slot came free)."""
        self._sends[target] += 1
        loop = asyncio.get_running_loop()
        self._numbered += 1
        self._live[task] = self._numbered
        self._live_numbers[self._numbered] = task
        self._order.append((loop.time() + self.after, self._numbered, target, woken))
        if self._timer is None or self._timer_loop is not loop:
            self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """The timer, for the first send in flight (those that ended are dropped here)."""
        while self._order and self._order[0][1] not in self._live_numbers:
            self._order.popleft()
        if self._order:
            self._timer = loop.call_at(self._order[0][0], self._sweep, loop)
            self._timer_loop = loop
        else:
            self._timer = self._timer_loop = None

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """The sends in flight `after` seconds are slow now."""
        now = loop.time()
        while self._order and self._order[0][0] <= now:
            _, number, target, woken = self._order.popleft()
            if (task := self._live_numbers.pop(number, None)) is not None:
                del self._live[task]
                self._slowed.add(task)
                self._slow[target] += 1
                woken()
        self._arm(loop)

    def ended(self, task: asyncio.Task[Outcome], target: uuid.UUID) -> None:
        if (number := self._live.pop(task, None)) is not None:
            del self._live_numbers[number]  # its place in `_order` is dropped by the timer
        elif task in self._slowed:
            self._slowed.discard(task)
            self._slow[target] -= 1
            if not self._slow[target]:
                del self._slow[target]
        if left := self._sends[target] - 1:  # (each lookup hashes the id: 0.4 us a uuid.UUID)
            self._sends[target] = left
        else:
            del self._sends[target]

    def blocked(self) -> list[uuid.UUID]:
        """The targets that get no new send now (for the claim and the fan-out to skip)."""
        return [t for t in self._slow if self._sends[t] >= self.most]

    def waiting_blocked(self, ready: deque[Claim]) -> int:
        """How many of the claims `ready` are of blocked targets (they take no claim's room)."""
        if not self._slow:
            return 0
        blocked = set(self.blocked())
        return sum(1 for c in ready if c.endpoint_id in blocked) if blocked else 0

    def take(
        self, ready: deque[Claim], most: int, until: dict[uuid.UUID, datetime], now: datetime
    ) -> tuple[list[Claim], list[Claim]]:
        """Up to `most` claims from `ready` whose lease still holds (in order), skipping a
        blocked target's (they keep their place); and those whose lease ran out (dropped: they
        may be another worker's by now)."""
        found: list[Claim] = []
        kept: list[Claim] = []
        expired: list[Claim] = []
        picked: Counter[uuid.UUID] = Counter()
        while ready and len(found) < most:
            claim = ready.popleft()
            if (lease_ends := until.pop(claim.delivery_id)) <= now:
                expired.append(claim)
                continue
            target = claim.endpoint_id
            if self._slow and target in self._slow:
                if self._sends[target] + picked[target] >= self.most:
                    until[claim.delivery_id] = lease_ends  # it waits on
                    kept.append(claim)
                    continue
                picked[target] += 1
            found.append(claim)
        ready.extendleft(reversed(kept))
        return found, expired
