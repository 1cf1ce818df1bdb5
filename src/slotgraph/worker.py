"""The worker: fans events out, runs the timers, and delivers webhooks.

`slotgraph worker` runs it alone; `slotgraph serve` runs it in-process unless `--no-worker`.
Any number of workers may share one PostgreSQL database: events and deliveries are claimed with
`FOR UPDATE SKIP LOCKED` and a lease, so a worker that dies has its claims taken over when the
lease runs out, and two workers make the same attempt only when a send outlasts its lease
(delivery is at least once; docs/operations.md). The steps that touch the database are in
worker_steps.py, one send on its channel in worker_sends.py, the slow targets in
worker_slots.py, how an outage is said in worker_outages.py; this module keeps the send slots and
the loops that feed them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from asyncio import FIRST_COMPLETED
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph import metrics
from slotgraph.db.engine import session_factory
from slotgraph.dbclock import DatabaseClock
from slotgraph.domain.deliveries import Outcome
from slotgraph.notifications.channel import EmailChannel
from slotgraph.services import deliveries
from slotgraph.settings import Settings
from slotgraph.syncer import CalendarSyncer
from slotgraph.worker_outages import Outages
from slotgraph.worker_sends import Sends
from slotgraph.worker_slots import SLOW_ROOM, SlowTargets
from slotgraph.worker_steps import Steps

log = logging.getLogger("slotgraph.worker")

# Records written at once by a running worker: with one, the answers that came during a
# record's round trip waited for it to end (issue 15, sixth pass).
_RECORDS = 2

# PostgreSQL: the fan-out leases up to `_AHEAD` x WORKER_BATCH ahead (sends in flight and claims
# waiting) and, after one that found events, waits until `_FAN_OUT` x WORKER_BATCH fit: a
# fan-out's fixed cost (five round trips, about 1.4 ms of the worker's CPU) is then shared by
# about 128 deliveries rather than 56 (4 and 1 before; issue 15, seventh pass).
_AHEAD = 6
_FAN_OUT = 4


class Worker:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        *,
        clock: Callable[[], datetime],
        jitter: Callable[[], float] = lambda: random.uniform(-1.0, 1.0),
        worker_id: str | None = None,
    ) -> None:
        self.sessions = session_factory(engine)
        # PostgreSQL: the fan-out takes what the slots have room for, so that first attempts are
        # born leased rather than claimed (a claim is an UPDATE and a sort in the server).
        # SQLite: it takes what it finds (each fan-out is a turn of the one writer; a claim is
        # cheap in the process): paced, `bench webhooks --sqlite --quick` delivered 1,950-2,140
        # events/s against 2,830 not (docs/benchmarks.md, sixth pass).
        self._paced = engine.dialect.name == "postgresql"
        self.settings = settings
        self.clock = clock
        # The database's clock (dbclock.py) is measured again with each round of timers.
        self._measure = clock.measure if isinstance(clock, DatabaseClock) else None
        self.jitter = jitter
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:64]
        self.lease = timedelta(seconds=settings.worker_lease_seconds)
        self._stop = asyncio.Event()
        self._inflight: dict[asyncio.Task[Outcome], deliveries.Claim] = {}
        self._ready: deque[deliveries.Claim] = deque()  # claimed, waiting for a free slot
        # Each waiting claim's lease ends no later than this (`_fill` sends none past it).
        self._until: dict[uuid.UUID, datetime] = {}
        self._results: list[tuple[deliveries.Claim, Outcome]] = []  # sent, not yet recorded
        self._recording_now = 0  # sent, being recorded
        self._sent = asyncio.Event()  # a send finished: a result to record
        self._freed = asyncio.Event()  # a slot came free (or claims were started)
        self._due = asyncio.Event()  # the fan-out made new deliveries
        self.outages = Outages(f"worker {self.id}")  # worker_outages.py: says what failed
        self.calendars = CalendarSyncer(self.sessions, settings, clock=clock, worker_id=self.id)
        self.steps = Steps(self.sessions, clock, self.id, self.lease)  # worker_steps.py
        self.emails = EmailChannel(self.sessions, settings, clock=clock)
        self.sends = Sends(settings, emails=self.emails, calendars=self.calendars)
        self.slow = SlowTargets(  # worker_slots.py
            after=settings.worker_slow_send_seconds, most=settings.worker_slow_target_sends
        )

    async def run_once(self, *, timers: bool = True, calendars: bool = True) -> int:
        """One cycle, start to end: fan out (up to `WORKER_BATCH` first attempts born leased),
        timers, claim what is left of `WORKER_BATCH`, send them all, record them; returns how
        much work it found (0: idle). `calendars`: also pull the due calendars (`run()` pulls
        them in a loop of their own instead). `run()` does not wait for a whole batch: it keeps
        the slots full (`_claiming`, `_looking`)."""
        work = 0
        if calendars:
            work += await self.calendars.run_once()
        batch = self.settings.worker_batch
        found, born = await self._fan_out(room=batch)
        try:
            if timers:
                found += await self.steps.chores()
            claims = born + await self._claim(batch - len(born))
        except Exception:
            # The fan-out committed `born` leased to this worker: sent now, not left to wait out
            # their lease (`run()` puts them in its slots before the chores, `_look`).
            await self._send_all(born)
            raise
        await self._send_all(claims)
        return work + found + len(claims)

    async def _send_all(self, claims: list[deliveries.Claim]) -> None:
        """Send `claims` and record them (`run_once`)."""
        if not claims:
            return
        async with self.sends.client():
            await asyncio.wait(self._start(claims))
        results, self._results = self._results, []
        if results:
            await self._record(results)

    async def _fan_out(self, *, room: int, limit: int = 500) -> tuple[int, list[deliveries.Claim]]:
        """The fan-out, born leased up to `room`."""
        work, queued, born = await self.steps.fan_out(
            room=room, limit=limit, skip=self.slow.blocked()
        )
        if queued:
            self._due.set()  # queued behind an earlier one, or no room: for the claims
        return work, born

    async def _claim(self, limit: int) -> list[deliveries.Claim]:
        return await self.steps.claim(limit, skip=self.slow.blocked())

    def _start(self, claims: Iterable[deliveries.Claim]) -> list[asyncio.Task[Outcome]]:
        """Send each claim in a task of its own; its result goes to `_results` when it ends."""
        tasks = []
        for claim in claims:
            task = asyncio.create_task(self.sends.send(claim))  # worker_sends.py
            self._inflight[task] = claim
            self.slow.started(task, claim.endpoint_id, self._fill)
            task.add_done_callback(self._done)
            tasks.append(task)
        return tasks

    def _unrecorded(self) -> int:
        """Sends answered but not yet recorded (a worker killed now makes them again)."""
        return len(self._results) + self._recording_now

    def _fill(self) -> None:
        """Start claimed sends while a slot is free. A slot is free once its send is answered
        or slow (worker_slots.py); while 2 x `WORKER_BATCH` answers wait to be recorded, no send
        starts (the recorder is behind), so a worker killed at any moment makes at most
        (3 + `SLOW_ROOM`) x `WORKER_BATCH` sends again: those on the wire (slow or not) and
        those answered but not recorded."""
        batch, sending = self.settings.worker_batch, len(self._inflight)
        slots = sending - self.slow.slow_sends  # a slow send holds no slot (worker_slots.py)
        most = (1 + SLOW_ROOM) * batch
        free = min(batch - slots, most - sending, 2 * batch - self._unrecorded())
        if free > 0 and self._ready and not self._stop.is_set():
            self._start(self._leased(free))
        self._freed.set()

    def _wait(self, claims: Iterable[deliveries.Claim], until: datetime) -> None:
        """Claims (leased until at least `until`) wait for a slot."""
        for claim in claims:
            self._until[claim.delivery_id] = until
            self._ready.append(claim)

    def _leased(self, most: int) -> list[deliveries.Claim]:
        """Up to `most` waiting claims whose lease still holds, but none of a blocked slow
        target's (they keep their place). One whose lease ran out while it waited may be
        another worker's by now (taken over, perhaps sent): not sent here, left to a claim."""
        found, expired = self.slow.take(self._ready, most, self._until, self.clock())
        for claim in expired:
            log.info("delivery %s: its lease ran out before a slot was free", claim.delivery_id)
        if expired:
            self._due.set()  # due again: for the claims
        return found

    def _done(self, task: asyncio.Task[Outcome]) -> None:
        """A send ended: its slot is free at once (the next claim waiting starts), and its
        result goes to the recorder. A send cut off by a graceful stop is released by stop(),
        not recorded; one that raised stays leased and is sent again when its lease runs out."""
        claim = self._inflight.pop(task)
        self.slow.ended(task, claim.endpoint_id)
        self._sent.set()
        if task.cancelled():
            pass
        elif (exc := task.exception()) is not None:
            log.error("delivery %s: the send failed", claim.delivery_id, exc_info=exc)
        else:
            self._results.append((claim, task.result()))
        self._fill()

    async def _pause(self, event: asyncio.Event, most: float | None = None) -> None:
        """Until `event` is set, the worker stops, or `most` seconds (a poll interval) passed."""
        if self._stop.is_set():
            return
        waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._stop.wait())]
        most = self.settings.worker_poll_seconds if most is None else most
        try:
            await asyncio.wait(waits, timeout=most, return_when=FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _claiming(self) -> None:
        """Keep the send slots full: claim while fewer than `WORKER_BATCH` claims wait for a
        slot, in batches of at least half of it unless the slots are about to run dry. A claim
        does not wait for a record: when a record frees its slots, claims are waiting."""
        batch = self.settings.worker_batch
        while not self._stop.is_set():
            room = self._room()
            if room < max(1, batch // 2) and self._ready:
                self._freed.clear()
                await self._pause(self._freed)
                continue
            self._due.clear()
            if not await self.outages.guarded(self._take(room)):
                # Nothing due: until the fan-out finds some. While a slow target is skipped,
                # its due deliveries wait for it: claimed again after `worker_slow_send_seconds`.
                blocked = self.slow.blocked()
                await self._pause(self._due, self.slow.after if blocked else None)

    async def _take(self, limit: int) -> int:
        until = self.clock() + self.lease  # no later than the claim's own `now` + lease
        claims = await self._claim(limit)
        self._wait(claims, until)
        self._fill()
        return len(claims)

    async def _recording(self) -> None:
        """Record the results as they come: all that came while the previous records were
        written, in one transaction, with up to `_RECORDS` such transactions at once (each on
        its own connection), so a record's round trip does not hold up the next answers. Ends
        once the sends and the records are done after a stop."""
        running: set[asyncio.Task[None]] = set()
        while self._results or self._inflight or running or not self._stop.is_set():
            if len(running) >= _RECORDS:
                await asyncio.wait(running, return_when=FIRST_COMPLETED)
                continue
            if not self._results:
                self._sent.clear()
                await self._pause(self._sent)
                if self._stop.is_set() and not self._results and (self._inflight or running):
                    await asyncio.wait({*self._inflight, *running}, return_when=FIRST_COMPLETED)
                continue
            results, self._results = self._results, []
            self._recording_now += len(results)
            task = asyncio.create_task(self._record_some(results))
            running.add(task)
            task.add_done_callback(running.discard)

    async def _record_some(self, results: list[tuple[deliveries.Claim, Outcome]]) -> None:
        try:
            await self.outages.guarded(self._record(results))
        finally:
            self._recording_now -= len(results)
            self._sent.set()  # the recorder may start the next
            self._fill()  # if sends waited for the recorder to catch up, they start now

    async def _looking(self) -> None:
        """Fan out every poll (again at once while it finds events), the timers when due. The
        fan-out feeds the send slots: it takes as many events as there is room for claims
        waiting (at least `WORKER_BATCH`), born leased; after one that found events, it waits
        until `_FAN_OUT` x `WORKER_BATCH` fit, at most a poll interval (then it fans out what
        fits, at least `WORKER_BATCH`, the rest queued for any worker's claim)."""
        loop_duration = metrics.get().worker_loop_duration
        batch = self.settings.worker_batch
        next_timers = 0.0
        while not self._stop.is_set():
            timers = time.monotonic() >= next_timers
            if timers:
                next_timers = time.monotonic() + self.settings.worker_timer_seconds
            if timers and self._measure is not None:
                await self.outages.guarded(self._measure())
            room = self._room(_AHEAD)
            limit = min(500, max(room, batch)) if self._paced else 500
            with metrics.timed(loop_duration):
                found = await self.outages.guarded(self._look(timers, room, limit))
            if found:
                deadline = time.monotonic() + self.settings.worker_poll_seconds
                while self._paced and self._room(_AHEAD) < _FAN_OUT * batch:
                    if (left := deadline - time.monotonic()) <= 0 or self._stop.is_set():
                        break
                    self._freed.clear()
                    await self._pause(self._freed, left)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.settings.worker_poll_seconds)

    def _room(self, most: int = 2) -> int:
        """How many more claims may wait for a slot: sends in flight and claims waiting, at most
        `most` x `WORKER_BATCH` (the claims' 2; the fan-out's `_AHEAD`, since a fan-out takes
        longer than a claim and is what keeps the slots full when events come in)."""
        slots = len(self._inflight) - self.slow.slow_sends
        waiting = len(self._ready) - self.slow.waiting_blocked(self._ready)
        return most * self.settings.worker_batch - slots - waiting

    async def _look(self, timers: bool, room: int, limit: int) -> int:
        until = self.clock() + self.lease  # no later than the fan-out's Lease
        found, born = await self._fan_out(room=room, limit=limit)
        if born:  # in the slots before the chores, which may fail (guarded) without them
            self._wait(born, until)
            self._fill()
        if timers:
            found += await self.steps.chores()
        return found

    async def _record(self, results: list[tuple[deliveries.Claim, Outcome]]) -> int:
        return await self.steps.record(results, self.jitter)

    async def run(self) -> None:
        """Loop until `stop()`; then let in-flight sends finish (bounded) and release the rest.

        Three loops share the worker, each on its own connection: one claims as send slots
        free up (up to `WORKER_BATCH` sends in flight, as many claims waiting for a slot), one
        records the results as they come in, one fans out and runs the timers. A claim never
        waits for a record, nor a record for a claim."""
        loop = type(asyncio.get_running_loop()).__module__.split(".")[0]  # uvloop or asyncio
        log.info("worker %s started on %s", self.id, loop)
        if self._measure is not None:  # before any lease or timer is written with it
            await self.outages.guarded(self._measure())
        calendars = asyncio.create_task(self.calendars.run(self._stop), name="slotgraph-calendars")
        try:
            async with self.sends.client():
                loops = [self._claiming(), self._recording(), self._looking()]
                await asyncio.gather(*loops)
                if unsent := list(self._ready):  # claimed, never sent: as if never taken
                    self._ready.clear()
                    self._until.clear()
                    async with self.sessions() as session:
                        await deliveries.release(session, claims=unsent, worker_id=self.id)
        finally:
            calendars.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await calendars
            log.info("worker %s stopped", self.id)

    async def stop(self, task: asyncio.Task[None]) -> None:
        """Graceful stop of the `run()` task: no new claims; sends in flight get
        `worker_shutdown_seconds` to finish, and the ones still unfinished are released."""
        self._stop.set()
        done, _ = await asyncio.wait({task}, timeout=self.settings.worker_shutdown_seconds)
        if done:
            return
        pending = [t for t in self._inflight if not t.done()]
        unsent = [self._inflight[t] for t in pending] + list(self._ready)
        self._ready.clear()
        self._until.clear()
        for t in pending:
            t.cancel()
        await asyncio.wait({task}, timeout=5)
        async with self.sessions() as session:
            await deliveries.release(session, claims=unsent, worker_id=self.id)
        task.cancel()
