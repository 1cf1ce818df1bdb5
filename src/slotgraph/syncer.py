"""The worker's calendar loop: pull every due CalDAV calendar into blocks (docs/calendars.md).

It runs beside the delivery loop (a slow calendar server never holds up webhooks), on the
worker's timer period: `run` claims for the sync slots free at each tick, each sync a task of
its own; `run_once` is one round that waits for its syncs, for tests and `worker --once`.
The fetch runs in a thread (the `caldav` library blocks), outside any transaction.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from asyncio import FIRST_COMPLETED
from collections import Counter
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from slotgraph.calendars import keys, push, remote, threads
from slotgraph.calendars.push import PushTarget
from slotgraph.db.engine import session_factory
from slotgraph.domain.deliveries import Outcome
from slotgraph.errors import ValidationFailed
from slotgraph.services import (
    calendar_connections,
    calendar_pulled,
    calendar_pushes,
    calendar_removals,
    calendar_sync,
)
from slotgraph.settings import Settings
from slotgraph.worker_outages import Outages

log = logging.getLogger("slotgraph.calendars")

CONCURRENT_SYNCS = 4
SLOW_ROOM = 3  # x CONCURRENT_SYNCS: slow syncs in flight at most, beside the slots (`_Syncs`)
CLEAR_BATCHES = 10  # a tick: 10,000 blocks of disconnected calendars let go of, at most


async def check_encryption_key(engine: AsyncEngine, settings: Settings) -> None:
    """Refuse to start (SystemExit) when calendar connections exist and no key decrypts them."""
    key = settings.encryption_key.get_secret_value() if settings.encryption_key else None
    async with session_factory(engine)() as session:
        await calendar_connections.check_key(session, encryption_key=key)


class CalendarSyncer:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        clock: Callable[[], datetime],
        worker_id: str,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        self.worker_id = worker_id
        # A sync's lease covers the sync's deadline (`_sync`) and the write after it: a second
        # worker never claims a sync still in flight. (60 s, the deliveries' lease, it did.)
        self.lease = timedelta(
            seconds=settings.calendar_sync_seconds + settings.worker_lease_seconds
        )
        key = settings.encryption_key
        self.key = key.get_secret_value() if key else None

    async def run_once(self) -> int:
        """Let go of disconnected calendars' blocks, then sync the calendars that are due now;
        returns how many were taken."""
        await self.clear()
        jobs = await self._claim(CONCURRENT_SYNCS)
        await asyncio.gather(*(self._sync(job) for job in jobs))
        return len(jobs)

    async def clear(self, *, batches: int | None = None) -> int:
        """Disconnected calendars' blocks let go of, a batch a transaction (`calendar_removals.
        clear_disconnected`): all of them, or at most `batches`. Returns the rows changed."""
        done = rounds = 0
        while batches is None or rounds < batches:
            async with self.sessions() as session:
                changed = await calendar_removals.clear_disconnected(session)
            done, rounds = done + changed, rounds + 1
            if not changed:
                break
        return done

    async def _claim(
        self,
        limit: int,
        *,
        per_app: int | None = None,
        skip: Collection[uuid.UUID] = (),
        skip_apps: Collection[uuid.UUID] = (),
    ) -> list[calendar_sync.SyncJob]:
        """Connections due now, leased to this worker (calendar_sync.claim_due)."""
        async with self.sessions() as session:
            return await calendar_sync.claim_due(
                session,
                now=self.clock(),
                worker_id=self.worker_id,
                lease=self.lease,
                limit=limit,
                encryption_key=self.key,
                per_app=per_app,
                skip=skip,
                skip_apps=skip_apps,
            )

    async def _sync(self, job: calendar_sync.SyncJob) -> None:
        interval = self.settings.calendar_sync_interval
        seconds = self.settings.calendar_sync_seconds
        try:
            async with asyncio.timeout(seconds):  # within the lease (`self.lease`)
                pulled, expanded = await self._fetch(job)
        except (remote.RemoteError, ValidationFailed, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                message = (
                    f"The sync took longer than {seconds:.0f} s (the CalDAV server, or this "
                    "app's turn at the CalDAV threads); it is retried."
                )
            else:
                message = exc.detail if isinstance(exc, ValidationFailed) else str(exc)
            async with self.sessions() as session:
                await calendar_sync.fail(
                    session,
                    job=job,
                    message=message,
                    now=self.clock(),
                    worker_id=self.worker_id,
                    interval=interval,
                )
            return
        async with self.sessions() as session:
            report = await calendar_sync.apply(
                session,
                job=job,
                pulled=pulled,
                expanded=expanded,
                now=self.clock(),
                worker_id=self.worker_id,
                interval=interval,
            )
        if report is not None:
            log.info(
                "calendar of resource %s: +%d -%d blocks, %d conflicts",
                job.resource_id,
                report.added,
                report.removed,
                len(report.conflicts),
            )

    async def _fetch(
        self, job: calendar_sync.SyncJob
    ) -> tuple[remote.Pulled, calendar_pulled.Expanded]:
        """The changes since the job's token and their busy time (in the CalDAV threads)."""
        allow_private = self.settings.webhook_allow_private_networks
        await calendar_connections.guard_url(job.account.url, allow_private=allow_private)
        pulled = await remote.call(
            job.app_id, remote.pull, job.account, job.sync_token, allow_private=allow_private
        )
        expanded = await remote.call(
            job.app_id,
            calendar_pulled.expand,
            pulled,
            timezone=job.timezone,
            now=self.clock(),
            resume=job.resume,
        )
        return pulled, expanded

    async def push(self, calendar_id: uuid.UUID, payload: str) -> Outcome:
        """The calendar channel's send, for the delivery pipeline (one claimed booking event)."""
        removal = calendar_removals.is_removal(payload)  # a disconnect's (calendar_removals.py)
        async with self.sessions() as session:
            try:
                target = await calendar_pushes.push_target(
                    session, calendar_id=calendar_id, encryption_key=self.key, removal=removal
                )
            except keys.KeyMissing as exc:
                outcome = Outcome(None, str(exc), 0, None)
                if removal:  # its last attempt ends it too
                    await self._removal_tried(calendar_id, outcome)
                return outcome
        allow_private = self.settings.webhook_allow_private_networks
        if removal:
            if target is None:
                return Outcome(204, None, 0, "removed already")
            return await self._remove(calendar_id, target, allow_private=allow_private)
        if target is None:
            return Outcome(None, "the calendar was disconnected", 0, None)
        return await push.send(
            payload, target, allow_private=allow_private, deadline=self._send_seconds()
        )

    def _send_seconds(self) -> float:
        """A push's or a removal's deadline (each read's timeout too, so its thread ends within
        twice this): within the delivery's lease, so no other worker sends it meanwhile.
        Before, a call's 300 s, under a lease of 60 s."""
        return min(remote.DEADLINE_SECONDS, self.settings.worker_lease_seconds / 3)

    async def _remove(
        self, calendar_id: uuid.UUID, target: PushTarget, *, allow_private: bool
    ) -> Outcome:
        async with self.sessions() as session, session.begin():
            flying = await calendar_removals.pushes_in_flight(
                session, calendar_id, now=self.clock()
            )
        if flying:  # only when the processes' clocks disagree (calendar_removals.disconnected)
            outcome = Outcome(None, calendar_removals.waiting(flying), 0, None)
        else:
            outcome = await push.remove(
                target, allow_private=allow_private, deadline=self._send_seconds()
            )
        await self._removal_tried(calendar_id, outcome)
        return outcome

    async def _removal_tried(self, calendar_id: uuid.UUID, outcome: Outcome) -> None:
        """After any attempt of a removal (one that could not even read the account too: before,
        that kept the hidden connection for ever): done, or its last attempt failed, the
        connection and its target go (calendar_removals.finish)."""
        async with self.sessions() as session:
            gone = await calendar_removals.finish(
                session,
                calendar_id=calendar_id,
                now=self.clock(),
                failed=not outcome.ok,
                error=outcome.error,
            )
        if outcome.ok:
            log.info("calendar %s: %s", calendar_id, outcome.response_body)
        elif gone:
            log.warning(
                "calendar %s: the pushed events were not removed, and no attempt is left: %s",
                calendar_id,
                outcome.error,
            )

    async def _start(self, syncs: _Syncs) -> None:
        """Claim what the free sync slots take, each sync a task of its own: before, a round
        waited for all of its syncs, so one app's slow server (300 s a call) held every
        app's pulls in this worker. An app has at most `remote.PER_APP` syncs claimed here,
        and none while it has a slow one (`_Syncs`)."""
        room = syncs.room()
        if room <= 0:
            return
        per_app = Counter(job.app_id for job in syncs.running.values())
        jobs = await self._claim(
            room,
            per_app=remote.PER_APP,
            skip={job.connection_id for job in syncs.running.values()},
            skip_apps={app for app, n in per_app.items() if n >= remote.PER_APP}
            | syncs.slow_apps(),
        )
        for job in jobs:
            syncs.started(asyncio.create_task(self._sync(job), name="slotgraph-calendar-sync"), job)

    async def _round(self, syncs: _Syncs) -> int:
        await self.clear(batches=CLEAR_BATCHES)
        await self._start(syncs)
        return 1

    async def run(self, stop: asyncio.Event) -> None:
        # A failed round is said as the worker says its steps' (worker_outages.py: each kind
        # once a minute, the end once), in lines of its own. Before, once per outage, and a
        # round that passed ended it: a database refusing writes only (whose reads passed)
        # would be said again after every round that wrote nothing.
        outages = Outages("calendar sync", log, failed="calendar sync round failed")
        syncs = _Syncs(outages)  # a sync that failed is said by the same rule
        try:
            while not stop.is_set():
                syncs.woken.clear()
                await outages.guarded(self._round(syncs))  # a blip must not end the loop
                waits = [asyncio.ensure_future(e.wait()) for e in (stop, syncs.woken)]
                try:  # the next tick, or at once when a sync turned slow (its slot is free)
                    await asyncio.wait(
                        waits,
                        timeout=self.settings.worker_timer_seconds,
                        return_when=FIRST_COMPLETED,
                    )
                finally:
                    for w in waits:
                        w.cancel()
            await asyncio.gather(*syncs.running, return_exceptions=True)  # stopping: let them end
        finally:  # (the worker cancels this loop when it stops; a lease left ends by itself)
            for task in syncs.running:
                task.cancel()
            await asyncio.gather(*syncs.running, return_exceptions=True)


class _Syncs:
    """The syncs in flight in `run`: `CONCURRENT_SYNCS` hold a slot each. A sync in flight
    `threads.SLOW_SECONDS` is slow (its server holds it): it leaves its slot (up to `SLOW_ROOM`
    x `CONCURRENT_SYNCS` slow syncs at once), the loop claims again at once, and its app gets no
    new sync claimed until it ends (the back of the queue). Before, four syncs of two apps whose
    servers held them took every slot, and every other app's pulls waited up to 300 s."""

    def __init__(self, outages: Outages) -> None:
        self.outages = outages
        self.running: dict[asyncio.Task[None], calendar_sync.SyncJob] = {}
        self.slow: set[asyncio.Task[None]] = set()
        self.timers: dict[asyncio.Task[None], asyncio.TimerHandle] = {}
        self.woken = asyncio.Event()  # a slot came free

    def room(self) -> int:
        in_slots = len(self.running) - len(self.slow)
        most = (1 + SLOW_ROOM) * CONCURRENT_SYNCS - len(self.running)
        return min(CONCURRENT_SYNCS - in_slots, most)

    def slow_apps(self) -> set[uuid.UUID]:
        return {self.running[task].app_id for task in self.slow}

    def started(self, task: asyncio.Task[None], job: calendar_sync.SyncJob) -> None:
        self.running[task] = job
        loop = asyncio.get_running_loop()
        self.timers[task] = loop.call_later(threads.SLOW_SECONDS, self._slow_now, task)
        task.add_done_callback(self._ended)

    def _slow_now(self, task: asyncio.Task[None]) -> None:
        self.timers.pop(task, None)
        if len(self.slow) < SLOW_ROOM * CONCURRENT_SYNCS:
            self.slow.add(task)
            self.woken.set()

    def _ended(self, task: asyncio.Task[None]) -> None:
        self.running.pop(task, None)
        self.slow.discard(task)
        if (timer := self.timers.pop(task, None)) is not None:
            timer.cancel()
        failed = None if task.cancelled() else task.exception()
        if failed is not None and not self.outages.said(failed):
            log.error("calendar sync failed; retrying", exc_info=failed)
