"""The worker's steps that touch the database, one transaction (or a few short ones) each: the
fan-out with its housekeeping, a claim, a record of sent results. `worker.Worker` decides when
each runs and keeps the send slots; these decide nothing about timing."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from slotgraph.domain.deliveries import Outcome
from slotgraph.notifications import reminders
from slotgraph.services import (
    calendar_removals,
    deliveries,
    email_quota,
    fanout,
    health,
    idempotency,
)
from slotgraph.services.bookings.timers import run_timers

log = logging.getLogger("slotgraph.worker")


@dataclass(frozen=True, slots=True)
class Steps:
    """What every step needs: the worker's sessions, clock, id and lease."""

    sessions: async_sessionmaker[AsyncSession]
    clock: Callable[[], datetime]
    worker_id: str
    lease: timedelta

    async def fan_out(
        self, *, room: int, limit: int, skip: Sequence[uuid.UUID] = ()
    ) -> tuple[int, bool, list[deliveries.Claim]]:
        """Fan up to `limit` new events out, up to `room` deliveries born leased to this worker
        (services/fanout.py), none to the targets `skip` (slow: worker_slots.py). Returns the
        events found, whether deliveries were queued for a claim (behind an earlier one, or no
        room), and the claims born leased, to send now: the caller hands them to the send slots
        before `chores`, which may fail without taking them along."""
        now = self.clock()
        lease = (
            fanout.Lease(self.worker_id, now + self.lease, room, frozenset(skip))
            if room > 0
            else None
        )
        async with self.sessions() as session:
            fanned = await fanout.dispatch(session, now=now, limit=limit, lease=lease)
        return fanned.events, bool(fanned.queued), fanned.claims

    async def chores(self) -> int:
        """The timers, reminders, heartbeat and pruning, each its own transaction; returns the
        work found."""
        async with self.sessions() as session:
            work = await run_timers(session, now=self.clock())
        async with self.sessions() as session:
            work += await reminders.send_due(session, now=self.clock())
        async with self.sessions() as session:
            await health.beat(session, worker_id=self.worker_id, now=self.clock())
        async with self.sessions() as session:
            await idempotency.prune(session, now=self.clock())
        async with self.sessions() as session:
            await email_quota.prune(session, now=self.clock())
        return work

    async def claim(self, limit: int, skip: Sequence[uuid.UUID] = ()) -> list[deliveries.Claim]:
        """Up to `limit` due deliveries, none to the targets `skip` (slow: worker_slots.py)."""
        if limit <= 0:
            return []
        async with self.sessions() as session:
            return await deliveries.claim(
                session,
                now=self.clock(),
                worker_id=self.worker_id,
                lease=self.lease,
                limit=limit,
                skip=skip,
            )

    async def record(
        self, results: list[tuple[deliveries.Claim, Outcome]], jitter: Callable[[], float]
    ) -> int:
        """The batch's results in one transaction. Sent but not recorded (the database went
        away, or our lease ran out first) means the delivery is sent again: say so, per delivery."""
        try:
            async with self.sessions() as session:
                lost = await deliveries.finish(
                    session,
                    results=results,
                    now=self.clock(),
                    worker_id=self.worker_id,
                    jitter=jitter,
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
        if calendars := {c.endpoint_id for c, _ in results if c.calendar_id is not None}:
            async with self.sessions() as session:  # a removal waiting for these pushes starts
                await calendar_removals.pushes_ended(session, targets=calendars, now=self.clock())
        return len(results)


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
