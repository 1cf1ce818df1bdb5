"""Local wall-clock time in an IANA zone, in whole seconds since the epoch (UTC). Pure.

What availability needs of a zone, computed once per local date and cached in bounded memory:
where each local day starts and ends, whether it is an ordinary day (no change of UTC offset, so
the wall clock and UTC move together), and the start grid of a day on which the clock changes.

The grid is local midnight + k x step on each local date. Every instant whose wall-clock reading
is on it is a grid start: wall times that do not exist (spring gap) are skipped, wall times that
happen twice (autumn fold) are starts both times. An opening boundary in a gap moves to where the
gap ends; one in a fold means its first occurrence.

Caches, bounded in bytes by construction (entries x the largest entry), not only in entries:
- `day`: 4,096 local dates, each a key and three numbers: at most about 2 MB;
- `change_points`: 64 DST-change days, each at most 2 x 1,440 points of 8 bytes (an `array`):
  at most about 1.5 MB.
Nothing else is kept between calls.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
MICRO = timedelta(microseconds=1)
MICROS = 1_000_000  # in a second
_DAY = timedelta(days=1)
DAY_CACHE_ENTRIES = 4096
CHANGE_DAY_CACHE_ENTRIES = 64


def floor_seconds(at: datetime) -> int:
    """Whole seconds since the epoch, rounded down. (`timestamp()` is a double: exact for whole
    seconds, and within 1e-6 s of the microseconds between 1900 and 2200, which never crosses a
    whole second; twice as fast as timedelta arithmetic.)"""
    return math.floor(at.timestamp())


def ceil_seconds(at: datetime) -> int:
    return math.ceil(at.timestamp())


def micros(at: datetime) -> int:
    """Microseconds since the epoch: exact (an aware datetime holds whole microseconds)."""
    return (at - EPOCH) // MICRO


def instant(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of a local wall time; None if it does not exist; first one if ambiguous."""
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=zone, fold=0)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        return None
    return aware.astimezone(UTC)


def instants(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """The UTC instants whose local reading is the naive `wall`: none (gap), one, or two (fold)."""
    found: list[datetime] = []
    for fold in (0, 1):
        at = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if at.astimezone(zone).replace(tzinfo=None) == wall and at not in found:
            found.append(at)
    return found


def _moved_boundary(day: date, at: time, zone: ZoneInfo) -> datetime:
    """A wall time in a DST gap moves forward to where the gap ends."""
    naive = datetime.combine(day, at)
    for minutes in range(0, 24 * 60):
        moved = naive + timedelta(minutes=minutes)
        found = local_instant(moved.date(), moved.time(), zone)
        if found is not None:
            return found
    raise AssertionError("no existing local time within a day")  # pragma: no cover


Points = Sequence[int]  # ascending epoch seconds


class Day(NamedTuple):
    """A local date: [start, end) in epoch seconds; `ordinary` if its UTC offset never changes."""

    start: int
    end: int
    ordinary: bool


@lru_cache(maxsize=DAY_CACHE_ENTRIES)
def day(zone_name: str, on: date) -> Day:
    zone = ZoneInfo(zone_name)
    first = _moved_boundary(on, time(0), zone)
    following = _moved_boundary(on + _DAY, time(0), zone)
    ordinary = (
        following - first == _DAY
        and first.astimezone(zone).utcoffset() == (following - SECOND).astimezone(zone).utcoffset()
    )
    return Day(floor_seconds(first), floor_seconds(following), ordinary)


def boundary(zone_name: str, on: date, at: time | None) -> int:
    """An opening boundary (None: 24:00) on a local date, in epoch seconds."""
    today = day(zone_name, on)
    if at is None:
        return today.end
    if today.ordinary:
        return today.start + at.hour * 3600 + at.minute * 60 + at.second
    return floor_seconds(_moved_boundary(on, at, ZoneInfo(zone_name)))


def local_date(zone_name: str, seconds: int) -> date:
    return datetime.fromtimestamp(seconds, ZoneInfo(zone_name)).date()


@lru_cache(maxsize=CHANGE_DAY_CACHE_ENTRIES)
def change_points(zone_name: str, on: date, step: int) -> Sequence[int]:
    """The grid of a day on which the clock changes, ascending: each wall-clock point on its own."""
    zone = ZoneInfo(zone_name)
    wall = datetime.combine(on, time(0))
    next_day = wall + _DAY
    found: set[int] = set()
    while wall < next_day:
        found.update(floor_seconds(at) for at in instants(wall, zone))
        wall += timedelta(seconds=step)
    return array("q", sorted(found))


def grid_runs(zone_name: str, step: int, spans: Sequence[tuple[int, int]]) -> Iterator[Points]:
    """The grid starts in ascending, disjoint closed intervals [lo, hi], as ascending runs.

    When the step divides a day, consecutive ordinary days share one lattice (an ordinary day
    lasts 86,400 s and starts where the previous one ends), so each interval is one `range` per
    stretch of ordinary days it meets, whatever its length; a day on which the clock changes is
    looked up by bisection. A stretch is found once for all the intervals in it (the days are
    walked once), and those intervals become ranges in one go.
    """
    if not spans:
        return iter(())
    if 86400 % step:
        return _runs_by_day(zone_name, step, spans)
    return _runs_by_stretch(zone_name, step, spans)


def _runs_by_stretch(
    zone_name: str, step: int, spans: Sequence[tuple[int, int]]
) -> Iterator[Sequence[int]]:
    start = end = 0  # a stretch of ordinary days [start, end): its lattice is start + k * step
    i, n = 0, len(spans)
    reach = spans[-1][1]  # a stretch is walked up to here at once (each span in it is one range)
    while i < n:
        lo, hi = spans[i]
        i += 1
        while True:
            if not start <= lo < end:
                on = local_date(zone_name, lo)
                today = day(zone_name, on)
                if not today.ordinary:
                    points = change_points(zone_name, on, step)
                    last = min(hi, today.end - 1)
                    run = points[bisect_left(points, lo) : bisect_right(points, last)]
                    if run:
                        yield run
                    if hi < today.end:
                        break
                    lo = today.end
                    continue
                start, end = today.start, today.end
                while end <= reach:  # the ordinary days that follow, up to the last span's
                    on += _DAY
                    following = day(zone_name, on)
                    if not following.ordinary:
                        break
                    end = following.end
            first = lo + (start - lo) % step  # the first lattice point >= lo
            if hi < end:
                if first <= hi:
                    yield range(first, hi + 1, step)
                # and the spans after it that end in this stretch too, in one go
                inside = bisect_left(spans, end, i, n, key=_second)
                yield from [
                    run
                    for lo, hi in spans[i:inside]
                    if (run := range(lo + (start - lo) % step, hi + 1, step))
                ]
                i = inside
                break
            if first < end:
                yield range(first, end, step)
            lo = end


def _second(span: tuple[int, int]) -> int:
    return span[1]


def _runs_by_day(
    zone_name: str, step: int, spans: Iterable[tuple[int, int]]
) -> Iterator[Sequence[int]]:
    """Day by day: nothing is materialised on an ordinary day (a run is a `range`), and the
    grid of a DST-change day is looked up by bisection. The days are walked once for all."""
    on: date | None = None
    today = Day(0, 0, True)
    for lo, hi in spans:
        if on is None or not today.start <= lo < today.end:
            on = local_date(zone_name, lo)
            today = day(zone_name, on)
        while today.start <= hi:
            a, b = max(lo, today.start), min(hi, today.end - 1)
            if a <= b:
                if today.ordinary:
                    first = today.start - ((today.start - a) // step) * step  # first point >= a
                    if first <= b:
                        yield range(first, b + 1, step)
                else:
                    points = change_points(zone_name, on, step)
                    run = points[bisect_left(points, a) : bisect_right(points, b)]
                    if run:
                        yield run
            if hi < today.end:
                break
            on += _DAY
            today = day(zone_name, on)


def on_grid(zone_name: str, step: int, at: int) -> bool:
    """Whether the wall-clock reading of the instant `at` is on the grid (either fold)."""
    local = datetime.fromtimestamp(at, ZoneInfo(zone_name)).replace(tzinfo=None)
    return not (local - datetime.combine(local.date(), time(0))) // SECOND % step
