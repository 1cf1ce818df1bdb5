"""What a pull keeps busy, and how it becomes blocks: the busy time of the changed calendar
objects (`expand`, CPU only, outside the transaction), the nearest `MAX_BLOCKS` of it kept
(`nearest`), and the writes of one sync's transaction (`write`, called by calendar_sync.apply).
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.calendars import remote
from slotgraph.calendars.pull import BadObject, Budget, Busy, PullSpent, busy_in
from slotgraph.db.models import (
    Booking,
    BookingHold,
    CalendarConnection,
    ResourceBlock,
)
from slotgraph.services import calendar_events
from slotgraph.services.outbox import record_event
from slotgraph.services.resources import MAX_BLOCKS, block_hold, bookings_under, remove_blocks

HORIZON_PAST = timedelta(days=1)
HORIZON_AHEAD = timedelta(days=366)
# MAX_BLOCKS (services/resources.py) per connection: the nearest are kept (`nearest`), as many
# as a resource may hold of its own (those are refused past it instead: an API caller can be
# told, a remote calendar cannot).
REASON = "Busy in the connected calendar"


@dataclass(frozen=True)
class Expanded:
    """What the changed objects keep busy (`expand`), read in `timezone`, with what was not
    readable."""

    timezone: str
    wanted: dict[str, list[Busy]]
    errors: list[str]
    # Not read, kept as they are: before `resume` (read earlier in the sweep), and from where
    # the pull's budget was spent on. `resume`: where the next pull goes on (the first object
    # left unread for the budget), or None when this pull read to the end.
    unread: frozenset[str] = frozenset()
    resume: str | None = None


def expand(
    pulled: remote.Pulled, *, timezone: str, now: datetime, resume: str | None = None
) -> Expanded:
    """The busy time of every changed object within the horizon, read in the order of their
    URLs from `resume` on (a sweep's next pull, services/calendar_sync.py). CPU only, no I/O:
    the worker runs it in a CalDAV thread, outside the transaction (`syncer.py`). On the event
    loop, in the transaction, a pull's expansion held every app's requests for seconds (4.6 s
    for 30 daily events since 1980, within the bounds of `calendars/pull.py`).

    In the order of their URLs, not the server's: a pull whose budget runs out names the first
    object it left unread, and the next pull goes on from there. Before, every pull read in the
    server's order, so a calendar larger than a pull reads had the same objects unread at each
    full sync, and a moved event among them stayed busy at its old time."""
    zone, budget = ZoneInfo(timezone), Budget()
    horizon = (now - HORIZON_PAST, now + HORIZON_AHEAD)
    wanted: dict[str, list[Busy]] = {}
    errors, unread, next_from = [], set(), None
    for href in sorted(pulled.changed):
        ics = pulled.changed[href]
        if resume is not None and href < resume:
            unread.add(href)  # read in this sweep already: kept
            continue
        try:
            found = busy_in(ics, zone=zone, horizon=horizon, budget=budget)
        except PullSpent as exc:
            errors.append(f"{href}: {exc}")
            unread.add(href)
            next_from = next_from or href
            continue
        except BadObject as exc:
            errors.append(f"{href}: {exc}")
            wanted[href] = []
            continue
        wanted[href] = found.busy
        if note := found.note():
            errors.append(f"{href}: {note}")
    return Expanded(timezone, wanted, errors, frozenset(unread), next_from)


@dataclass
class SyncReport:
    added: int = 0
    removed: int = 0
    conflicts: list[uuid.UUID] = field(default_factory=list)


@dataclass(frozen=True)
class Nearest:
    """The busy time a connection keeps: of what changed, `wanted` (by href); of its blocks
    that did not change, the ids to let go of (`dropped`); and what was left out."""

    wanted: dict[str, list[Busy]]
    dropped: list[uuid.UUID]
    left_out: int = 0
    after: datetime | None = None  # the earliest start left out

    def note(self) -> str | None:
        """What `last_error` says of the busy times left out, if any."""
        if not self.left_out or self.after is None:
            return None
        return (
            f"{self.left_out:,} busy times from {self.after:%Y-%m-%dT%H:%MZ} on were left out "
            f"(at most {MAX_BLOCKS:,} per calendar, the earliest kept)"
        )


def nearest(wanted: dict[str, list[Busy]], kept: list[ResourceBlock]) -> Nearest:
    """The earliest `MAX_BLOCKS` busy times of the connection, the blocks it keeps unchanged
    (`kept`) and what changed (`wanted`) counted alike (the horizon starts a day back: the
    nearest ones). Before, the changed objects filled what was left by their hrefs' order, so
    an object of far-future events (a noisy calendar's, or one written to crowd the others
    out) took the room of this week's busy time, and the blocks already kept were never given
    up for nearer ones."""
    total = len(kept) + sum(len(busy) for busy in wanted.values())
    if total <= MAX_BLOCKS:
        return Nearest(wanted, [])
    # (start, end, 0 for a kept block and its index, or 1 for a wanted one and its href)
    times: list[tuple[datetime, datetime, int, int | str]] = [
        (b.start_time, b.end_time, 0, i) for i, b in enumerate(kept)
    ]
    for href, busy in wanted.items():
        times.extend((b.start, b.end, 1, href) for b in busy)
    times.sort(key=lambda t: (t[0], t[1]))
    cut = times[MAX_BLOCKS:]
    dropped = [kept[i].id for _, _, kind, i in cut if kind == 0 and isinstance(i, int)]
    over: Counter[tuple[str, datetime, datetime]] = Counter(
        (str(href), start, end) for start, end, kind, href in cut if kind == 1
    )
    shortened: dict[str, list[Busy]] = {}
    for href, busy in wanted.items():
        keep = []
        for b in reversed(busy):  # the latest copies of a time go first
            if over[(href, b.start, b.end)] > 0:
                over[(href, b.start, b.end)] -= 1
            else:
                keep.append(b)
        shortened[href] = keep[::-1]
    return Nearest(shortened, dropped, len(cut), cut[0][0])


async def write(
    session: AsyncSession,
    conn: CalendarConnection,
    *,
    pulled: remote.Pulled,
    wanted: dict[str, list[Busy]],
    errors: list[str],
    now: datetime,
    unread: frozenset[str] = frozenset(),
) -> SyncReport:
    """The blocks of the connection made to match what the pull found (in the caller's
    transaction, the resource locked): deleted and gone objects' blocks removed, each changed
    object's blocks compared with what it keeps busy now, the nearest `MAX_BLOCKS` kept in
    all (said in `errors`), and `calendar.conflict` for new ones over a booking. The objects
    `unread` (the pull had read all it reads) keep their blocks: before, a full sync counted
    them gone, and a calendar larger than a pull reads lost the busy time of its last objects
    at every full sync."""
    report = SyncReport()
    wanted = dict(wanted)
    await _drop_our_own(session, conn.app_id, wanted)
    existing = await _existing(session, conn.id)
    gone = set(pulled.deleted)
    if pulled.full:
        gone |= set(existing) - set(wanted) - unread
    # From the rows read above, not by their hrefs: a full sync may find 50,000 objects gone,
    # and a statement takes at most 32,767 parameters (SQLite 32,766), so such a sync failed
    # every time and the deleted events stayed busy.
    removed = [b.id for href in sorted(gone - set(wanted)) for b in existing.get(href, [])]
    if removed:
        report.removed += len(removed)
        await remove_blocks(session, removed, now=now)
    untouched = set(existing) - set(wanted) - gone
    kept = nearest(wanted, [b for href in sorted(untouched) for b in existing[href]])
    if kept.dropped:
        report.removed += len(kept.dropped)
        await remove_blocks(session, kept.dropped, now=now)
    if note := kept.note():  # first: `last_error` keeps 500 characters
        errors.insert(0, note)
    new_blocks: list[ResourceBlock] = []
    for href, busy in sorted(kept.wanted.items()):
        have = existing.get(href, [])
        want = Counter((b.start, b.end) for b in busy)
        stale = [b.id for b in have if _take(want, b)]
        if stale:
            report.removed += len(stale)
            await remove_blocks(session, stale, now=now)
        for b in busy:
            if want[(b.start, b.end)] > 0:
                want[(b.start, b.end)] -= 1
                new_blocks.append(_block(conn, href, b, now))
    session.add_all(new_blocks)
    await session.flush()
    session.add_all(block_hold(b) for b in new_blocks)
    report.added = len(new_blocks)
    report.conflicts = await _flag_conflicts(session, conn, new_blocks, now)
    return report


def _take(want: Counter[tuple[datetime, datetime]], b: ResourceBlock) -> bool:
    """True when an existing block is no longer wanted (consumes one wanted copy otherwise)."""
    key = (b.start_time, b.end_time)
    if want[key] > 0:
        want[key] -= 1
        return False
    return True


def _block(conn: CalendarConnection, href: str, busy: Busy, now: datetime) -> ResourceBlock:
    return ResourceBlock(
        app_id=conn.app_id,
        resource_id=conn.resource_id,
        start_time=busy.start,
        end_time=busy.end,
        reason=REASON,
        created_at=now,
        calendar_id=conn.id,
        calendar_href=href[:2048],
        calendar_uid=busy.uid[:500] or None,
    )


async def _existing(
    session: AsyncSession, connection_id: uuid.UUID
) -> dict[str, list[ResourceBlock]]:
    rows = await session.scalars(
        select(ResourceBlock).where(
            ResourceBlock.calendar_id == connection_id, ResourceBlock.deleted_at.is_(None)
        )
    )
    out: dict[str, list[ResourceBlock]] = {}
    for b in rows:
        out.setdefault(b.calendar_href or "", []).append(b)
    return out


async def _drop_our_own(
    session: AsyncSession, app_id: uuid.UUID, wanted: dict[str, list[Busy]]
) -> None:
    """Events whose UID is one of this app's bookings came from slotgraph (a push): not busy
    time from outside, even where a server dropped the X-SLOTGRAPH-BOOKING-ID mark."""
    uids = set()
    for busy in wanted.values():
        for b in busy:
            try:
                uids.add(uuid.UUID(b.uid))
            except ValueError:
                continue
    if not uids:
        return
    ours = {
        str(i)
        for i in await session.scalars(
            select(Booking.id).where(Booking.app_id == app_id, Booking.id.in_(sorted(uids)))
        )
    }
    for href, busy in wanted.items():
        wanted[href] = [b for b in busy if b.uid not in ours]


async def _flag_conflicts(
    session: AsyncSession, conn: CalendarConnection, blocks: list[ResourceBlock], now: datetime
) -> list[uuid.UUID]:
    """New busy time over a booking that was free when booked: `calendar.conflict`, once per
    (block, booking), when the block appears (or moves). The booking stands; someone has to
    decide (docs/calendars.md)."""
    flagged: list[uuid.UUID] = []
    if not blocks:
        return flagged
    # One query narrows the blocks to those near a booking at all; only those are checked.
    held = (
        await session.execute(
            select(BookingHold.start_time, BookingHold.end_time).where(
                BookingHold.resource_id == conn.resource_id,
                BookingHold.active.is_(True),
                BookingHold.booking_id.is_not(None),
                BookingHold.start_time < max(b.end_time for b in blocks),
                BookingHold.end_time > min(b.start_time for b in blocks),
            )
        )
    ).all()
    near = [b for b in blocks if any(s < b.end_time and e > b.start_time for s, e in held)]
    for block in near:
        for booking_id in await bookings_under(
            session, conn.resource_id, block.start_time, block.end_time, now=now
        ):
            flagged.append(booking_id)
            record_event(
                session,
                app_id=conn.app_id,
                type_=calendar_events.CONFLICT,
                booking_id=booking_id,
                data={
                    "resource_id": str(conn.resource_id),
                    "booking_id": str(booking_id),
                    "block": {
                        "block_id": str(block.id),
                        "start_time": block.start_time.isoformat(),
                        "end_time": block.end_time.isoformat(),
                        "calendar_uid": block.calendar_uid,
                    },
                },
                now=now,
            )
    return flagged
