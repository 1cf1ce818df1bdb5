"""What an operator watches: readiness checks, worker heartbeats, the outbox lag."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import Delivery, Event, UndispatchedEvent, WorkerHeartbeat
from slotgraph.domain.availability import rfc3339

HEARTBEAT_KEEP = timedelta(days=1)
# A heartbeat further ahead of the reader's clock than this is not fresh: a worker (or this
# server) whose clock is wrong, and a dead worker's beat from its future would keep /readyz
# green until the clocks caught up. A minute, not the 5 s it was: since ADR 0019 every process
# keeps the database's time (dbclock.py, milliseconds apart), and before it an API server a few
# seconds off its workers was taken out of its load balancer for a skew that moved a hold's
# deadline by those seconds; a worker of an older version, or an hour ahead, is still caught.
HEARTBEAT_AHEAD = timedelta(seconds=60)


@dataclass
class Readiness:
    ready: bool = True
    checks: dict[str, dict[str, object]] = field(default_factory=dict)

    def check(self, name: str, ok: bool, **detail: object) -> None:
        self.checks[name] = {"ok": ok, **detail}
        self.ready = self.ready and ok


async def readiness(
    session: AsyncSession, *, now: datetime, within_seconds: float, worker_max_age: timedelta
) -> Readiness:
    """Database answers within `within_seconds`, schema at the newest migration, worker looping."""
    out = Readiness()
    try:
        async with asyncio.timeout(within_seconds), session.begin():
            revision = await session.scalar(text("SELECT version_num FROM alembic_version"))
            last_beat = await session.scalar(
                select(func.max(WorkerHeartbeat.beat_at)).where(
                    WorkerHeartbeat.beat_at <= now + HEARTBEAT_AHEAD
                )
            )
            ahead = await session.scalar(
                select(func.max(WorkerHeartbeat.beat_at)).where(
                    WorkerHeartbeat.beat_at > now + HEARTBEAT_AHEAD
                )
            )
    except Exception as exc:  # any failure to answer is "not ready", with its reason
        out.check("database", False, error=_reason(exc, within_seconds))
        return out
    out.check("database", True)
    # On the first /readyz, not at start: alembic (with mako and pygments) is a tenth of what a
    # server child imports, and only the supervisor, which migrates, needs it before then.
    # Read once, in a thread: alembic's imports and its scripts took 86 ms of the event loop,
    # every request on it waiting (and the scripts were read again by every /readyz).
    head = _HEAD[0] if _HEAD else await asyncio.to_thread(_head_revision)
    out.check("migrations", revision == head, current=revision, head=head)
    fresh = last_beat is not None and now - last_beat <= worker_max_age
    detail: dict[str, object] = {}
    if ahead is not None:  # said even while another worker's beat is fresh
        seconds = round((ahead - now).total_seconds(), 1)
        detail["ahead_heartbeat"] = rfc3339(ahead)
        detail["error"] = (
            f"a heartbeat {seconds} s ahead of this server's clock, not counted: "
            "a worker's clock or this server's is wrong (set them right: NTP)"
        )
    out.check(
        "worker",
        fresh,
        last_heartbeat=rfc3339(last_beat) if last_beat else None,
        max_age_seconds=worker_max_age.total_seconds(),
        **detail,
    )
    return out


async def beat(session: AsyncSession, *, worker_id: str, now: datetime) -> None:
    """Record that `worker_id` is looping; forget workers silent for a day."""
    async with session.begin():
        done = await session.execute(
            update(WorkerHeartbeat)
            .where(WorkerHeartbeat.worker_id == worker_id)
            .values(beat_at=now)
        )
        if not getattr(done, "rowcount", 0):
            session.add(WorkerHeartbeat(worker_id=worker_id, beat_at=now))
        await session.execute(
            delete(WorkerHeartbeat).where(WorkerHeartbeat.beat_at < now - HEARTBEAT_KEEP)
        )


async def outbox_lag(session: AsyncSession, *, now: datetime) -> float:
    """Age in seconds of the oldest event not yet delivered everywhere it should go (0: none)."""
    async with session.begin():
        undispatched = await session.scalar(
            select(func.min(Event.created_at)).join(
                UndispatchedEvent, UndispatchedEvent.seq == Event.seq
            )
        )
        pending = await session.scalar(
            select(func.min(Event.created_at))
            .join(Delivery, Delivery.event_id == Event.id)
            .where(Delivery.status == "pending")
        )
    oldest = min((t for t in (undispatched, pending) if t is not None), default=None)
    return max(0.0, (now - oldest).total_seconds()) if oldest else 0.0


_HEAD: list[str | None] = []  # the newest migration this code knows, once read


def _head_revision() -> str | None:
    from slotgraph.db.migrate import head_revision

    if not _HEAD:
        _HEAD.append(head_revision())
    return _HEAD[0]


def _reason(exc: Exception, within_seconds: float) -> str:
    """Why the database did not answer, for `/readyz` (no key: no values, no addresses). An
    outage names the driver's error it came from (`TooManyConnectionsError`,
    `ConnectionRefusedError`, ...): "cannot be reached" alone did not say that max_connections
    was exhausted (docs/operations.md, "Bad days")."""
    if isinstance(exc, TimeoutError):
        return (
            f"TimeoutError: no answer within {within_seconds:g} s (a slow database, or every "
            "pooled connection of this process in use)"
        )
    reason = f"{type(exc).__name__}: {exc}"
    root: BaseException = exc
    while root.__cause__ is not None:
        root = root.__cause__
    if root is not exc:
        reason += f" ({type(root).__name__})"
    return reason[:300]
