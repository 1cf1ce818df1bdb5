"""The worker: fans events out, runs the timers, and delivers webhooks.

`slotgraph worker` runs it alone; `slotgraph serve` runs it in-process unless `--no-worker`.
Any number of workers may share one PostgreSQL database: events and deliveries are claimed with
`FOR UPDATE SKIP LOCKED` and a lease, so a worker that dies has its claims taken over when the
lease runs out, and no two workers ever make the same attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph import logs, metrics
from slotgraph.db.engine import is_unavailable, session_factory
from slotgraph.domain.deliveries import Outcome
from slotgraph.notifications import reminders
from slotgraph.notifications.channel import FORMATS as EMAIL_FORMATS
from slotgraph.notifications.channel import EmailChannel
from slotgraph.services import deliveries, health, idempotency
from slotgraph.services.bookings.timers import run_timers
from slotgraph.settings import Settings
from slotgraph.syncer import CalendarSyncer
from slotgraph.webhooks import sender

log = logging.getLogger("slotgraph.worker")


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
        self.settings = settings
        self.clock = clock
        self.jitter = jitter
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:64]
        self.lease = timedelta(seconds=settings.worker_lease_seconds)
        self._stop = asyncio.Event()
        self._inflight: dict[asyncio.Task[Outcome], deliveries.Claim] = {}
        self._http: aiohttp.ClientSession | None = None  # opened by run() or run_once()
        self.calendars = CalendarSyncer(self.sessions, settings, clock=clock, worker_id=self.id)
        self.emails = EmailChannel(self.sessions, settings, clock=clock)

    async def run_once(self, *, timers: bool = True, calendars: bool = True) -> int:
        """One cycle, start to end: fan out, timers, claim up to `WORKER_BATCH`, send them all,
        record them; returns how much work it found (0: idle). `calendars`: also pull the due
        calendars (`run()` pulls them in a loop of their own instead). `run()` does not wait for
        a whole batch: it keeps the slots full (`_cycle`)."""
        work = 0
        if calendars:
            work += await self.calendars.run_once()
        work += await self._housekeeping(timers=timers)
        claims = await self._claim(self.settings.worker_batch)
        if claims:
            async with self._client():
                await asyncio.wait(self._start(claims))
            if results := self._finished():
                await self._record(results)
        return work + len(claims)

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[None]:
        """The HTTP client for webhook sends, open for the block (unless already open)."""
        if self._http is not None:
            yield
            return
        self._http = sender.session(
            connections=self.settings.worker_batch,
            allow_private=self.settings.webhook_allow_private_networks,
        )
        try:
            yield
        finally:
            await self._http.close()
            self._http = None

    async def _housekeeping(self, *, timers: bool) -> int:
        """Fan new events out; with `timers`, also the timers, reminders, heartbeat and pruning."""
        async with self.sessions() as session:
            work = await deliveries.dispatch(session, now=self.clock())
        if timers:
            async with self.sessions() as session:
                work += await run_timers(session, now=self.clock())
            async with self.sessions() as session:
                work += await reminders.send_due(session, now=self.clock())
            async with self.sessions() as session:
                await health.beat(session, worker_id=self.id, now=self.clock())
            async with self.sessions() as session:
                await idempotency.prune(session, now=self.clock())
        return work

    async def _claim(self, limit: int) -> list[deliveries.Claim]:
        if limit <= 0:
            return []
        async with self.sessions() as session:
            return await deliveries.claim(
                session, now=self.clock(), worker_id=self.id, lease=self.lease, limit=limit
            )

    def _start(self, claims: list[deliveries.Claim]) -> list[asyncio.Task[Outcome]]:
        """Send each claim in a task of its own; `_finished()` collects them."""
        tasks = [asyncio.create_task(self._send(c)) for c in claims]
        self._inflight.update(zip(tasks, claims, strict=True))
        return tasks

    def _finished(self) -> list[tuple[deliveries.Claim, Outcome]]:
        """Take the finished sends out of the in-flight set. A send cut off by a graceful stop
        is released by stop(), not recorded; one that raised stays leased and is sent again
        when its lease runs out."""
        results = []
        for task in [t for t in self._inflight if t.done()]:
            claim = self._inflight.pop(task)
            if task.cancelled():
                continue
            if (exc := task.exception()) is not None:
                log.error("delivery %s: the send failed", claim.delivery_id, exc_info=exc)
                continue
            results.append((claim, task.result()))
        return results

    async def _cycle(self, *, timers: bool, look: bool) -> tuple[int, int]:
        """`run()`'s step: record the sends that finished, fan out and run the timers when due
        (`look`, `timers`), and fill the free slots with new claims. Sends are not awaited
        here, so a slow receiver holds one slot, not a batch. Returns (the work done, the work
        fan-out and timers found)."""
        results = self._finished()

        async def record() -> int:
            if results:
                await self._record(results)
            return len(results)

        async def housekeeping() -> int:
            return await self._housekeeping(timers=timers) if look or timers else 0

        # Three transactions on three connections at once: a cycle waits for the slowest, not
        # for their sum. A claim that runs beside the record of an earlier event of the same
        # booking does not see it finished yet, and leaves the later one for the next cycle.
        recorded, found, claims = await asyncio.gather(
            record(),
            housekeeping(),
            self._claim(self.settings.worker_batch - len(self._inflight)),
            return_exceptions=True,
        )
        if isinstance(claims, list):
            self._start(claims)  # claimed is leased: send it even if the record failed
        if isinstance(recorded, BaseException):
            raise recorded
        if isinstance(found, BaseException):
            raise found
        if isinstance(claims, BaseException):
            raise claims
        return recorded + found + len(claims), found

    async def _send(self, claim: deliveries.Claim) -> Outcome:
        logs.request_id.set(claim.request_id)  # this task's log lines name the request
        if claim.calendar_id is not None:
            return await self.calendars.push(claim.calendar_id, claim.payload)
        if claim.format in EMAIL_FORMATS:
            return await self.emails.send(
                delivery_id=claim.delivery_id, format_=claim.format, payload=claim.payload
            )
        outcome = await self._send_webhook(claim)
        metrics.get().webhook_attempts.labels(outcome_label(outcome)).inc()
        return outcome

    async def _record(self, results: list[tuple[deliveries.Claim, Outcome]]) -> None:
        """The batch's results in one transaction. Sent but not recorded (the database went
        away, or our lease ran out first) means the delivery is sent again: say so, per delivery."""
        try:
            async with self.sessions() as session:
                lost = await deliveries.finish(
                    session,
                    results=results,
                    now=self.clock(),
                    worker_id=self.id,
                    jitter=self.jitter,
                )
        except Exception as exc:
            for claim, _ in results:
                log.warning(
                    "delivery %s: sent (attempt %d) but its result could not be recorded (%s); "
                    "it is sent again when its lease runs out",
                    claim.delivery_id,
                    claim.attempt,
                    type(exc).__name__,
                )
            raise
        for claim in lost:
            log.warning(
                "delivery %s: sent (attempt %d) after its lease ran out; another worker may "
                "send it again",
                claim.delivery_id,
                claim.attempt,
            )

    async def _send_webhook(self, claim: deliveries.Claim) -> Outcome:
        assert self._http is not None, "sends run inside _client()"
        return await sender.send(
            self._http,
            url=claim.url,
            msg_id=str(claim.event_id),
            body=claim.payload,
            secrets_=claim.secrets,
            allow_private=self.settings.webhook_allow_private_networks,
            format_=claim.format,
            request_id=claim.request_id,
        )

    async def run(self) -> None:
        """Loop until `stop()`; then let in-flight sends finish (bounded) and release the rest.

        Up to `WORKER_BATCH` sends are in flight at all times: as sends finish, their results
        are recorded in one transaction and their slots claimed again, while the others are
        still on the wire."""
        log.info("worker %s started", self.id)
        next_timers = next_look = 0.0
        loop_duration = metrics.get().worker_loop_duration
        unavailable = False  # said once per outage, not every 0.2 s
        poll = self.settings.worker_poll_seconds
        calendars = asyncio.create_task(self.calendars.run(self._stop), name="slotgraph-calendars")
        try:
            async with self._client():
                while not self._stop.is_set():
                    timers = time.monotonic() >= next_timers
                    if timers:
                        next_timers = time.monotonic() + self.settings.worker_timer_seconds
                    look = time.monotonic() >= next_look  # fan out: every poll while busy
                    if look:
                        next_look = time.monotonic() + poll
                    try:
                        with metrics.timed(loop_duration):
                            work, found = await self._cycle(timers=timers, look=look)
                        if found:  # a full fan-out may have left more behind: look again at once
                            next_look = 0.0
                        if unavailable:
                            log.info("worker %s: the database is back", self.id)
                            unavailable = False
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # a database blip must not kill the loop
                        if is_unavailable(exc):
                            if not unavailable:
                                log.warning("worker %s: database unavailable; retrying", self.id)
                            unavailable = True
                        else:
                            log.exception("worker cycle failed; retrying")
                        work = 0
                    if self._inflight:  # until a send finishes (or the next look is due)
                        await asyncio.wait(
                            self._inflight, timeout=poll, return_when=asyncio.FIRST_COMPLETED
                        )
                    elif not work:
                        next_look = 0.0
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._stop.wait(), timeout=poll)
                while self._inflight:  # stopping: no new claims; record what finishes
                    await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                    if results := self._finished():
                        with contextlib.suppress(Exception):  # logged per delivery by _record
                            await self._record(results)
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
        unsent = [self._inflight[t] for t in pending]
        for t in pending:
            t.cancel()
        await asyncio.wait({task}, timeout=5)
        async with self.sessions() as session:
            await deliveries.release(session, claims=unsent, worker_id=self.id)
        task.cancel()


def outcome_label(outcome: Outcome) -> str:
    """A small fixed set of metric labels for an attempt's outcome."""
    if outcome.ok:
        return "success"
    if outcome.status_code is not None:
        return "http_error"
    error = outcome.error or ""
    if error.startswith("refused"):
        return "refused"
    if error.startswith("timeout"):
        return "timeout"
    return "error"
