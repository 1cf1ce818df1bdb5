"""Availability: opening hours in local time, buffers, rules, and the free slots they leave.

Pure functions. Times in and out are aware UTC datetimes; opening hours are local wall-clock times
in the resource's IANA zone, expanded per local date with zoneinfo, so a DST change never shifts
them. Conventions (docs/availability.md):
- a local time that does not exist (spring forward) is skipped: a grid start there is not
  offered, and an opening boundary there moves to the moment the gap ends;
- an ambiguous local time (autumn fold) as an opening boundary means its first occurrence;
- every instant whose local wall-clock reading is on the grid is a grid start, so both occurrences
  of a repeated wall time (autumn fold) are starts;
- "24:00" as an end means the end of that local day.

The free starts for a duration `d` are computed as closed intervals:
  opening [a, b)            -> starts [a, b - d]
  busy span [x, y)          -> forbids starts in the open interval (x - d - after, y + before)
  notice and advance        -> starts in [now + min_notice, now + max_advance]
                               (no min_notice: no lower bound, so past starts too)
and a slot is a grid point inside them. A busy span already includes the buffers of the booking
that holds it, so this is exactly the overlap rule the database enforces on holds.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from slotgraph.errors import Conflict

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZERO = timedelta(0)
DEFAULT_STEP = timedelta(minutes=15)
_DAY = timedelta(days=1)

Hours = Sequence[tuple[time, time | None]]  # (start, end); end None means 24:00


class OutsideAvailability(Conflict):
    code = "outside_availability"
    title = "Outside the resource's availability"


class TooSoon(Conflict):
    code = "too_soon"
    title = "Too soon"


class TooFarAhead(Conflict):
    code = "too_far_ahead"
    title = "Too far ahead"


class DurationOutOfRange(Conflict):
    code = "duration_out_of_range"
    title = "Duration out of range"


@dataclass(frozen=True)
class Rules:
    timezone: str
    weekly_hours: Mapping[str, Hours] | None = None  # None: open around the clock
    exceptions: Mapping[date, Hours] = field(default_factory=dict)
    buffer_before: timedelta = ZERO
    buffer_after: timedelta = ZERO
    min_notice: timedelta | None = None  # None: none at all (past starts allowed)
    max_advance: timedelta | None = None
    min_duration: timedelta | None = None
    max_duration: timedelta | None = None
    slot_step: timedelta = DEFAULT_STEP

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def hours_on(self, day: date) -> Hours:
        if day in self.exceptions:
            return self.exceptions[day]
        if self.weekly_hours is None:
            return [(time(0), None)]
        return self.weekly_hours.get(WEEKDAYS[day.weekday()], [])

    def hold_span(self, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        """What a booking of [start, end) keeps busy: its time and its buffers."""
        return start - self.buffer_before, end + self.buffer_after


# -- local time ----------------------------------------------------------------------------------


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of a local wall time; None if it does not exist; first one if ambiguous."""
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=zone, fold=0)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        return None
    return aware.astimezone(UTC)


def _boundary(day: date, at: time | None, zone: ZoneInfo) -> datetime:
    """An opening boundary: a wall time in a DST gap moves forward to where the gap ends."""
    if at is None:
        day, at = day + timedelta(days=1), time(0)
    naive = datetime.combine(day, at)
    for minutes in range(0, 24 * 60):
        moved = naive + timedelta(minutes=minutes)
        found = local_instant(moved.date(), moved.time(), zone)
        if found is not None:
            return found
    raise AssertionError("no existing local time within a day")  # pragma: no cover


def _local_dates(start: datetime, end: datetime, zone: ZoneInfo) -> Iterator[date]:
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        yield day
        day += timedelta(days=1)


def opening(rules: Rules, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The resource's opening hours overlapping [start, end), as merged UTC intervals."""
    zone = rules.zone
    spans = []
    for day in _local_dates(start, end, zone):
        for a, b in rules.hours_on(day):
            lo, hi = _boundary(day, a, zone), _boundary(day, b, zone)
            if lo < hi and lo < end and hi > start:
                spans.append((lo, hi))
    return merge(spans)


def merge(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Union of half-open intervals; touching ones join."""
    out: list[tuple[datetime, datetime]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def grid(
    rules: Rules, start: datetime, end: datetime, step: timedelta | None = None
) -> list[datetime]:
    """Start times on the grid in [start, end), ascending: local midnight + k * step, each day.

    Every instant whose wall-clock reading is on the grid: wall-clock points that do not exist
    are skipped; ambiguous ones (the autumn fold) are both starts.
    """
    return list(_grid(rules.timezone, step or rules.slot_step, start, end))


@lru_cache(maxsize=256)
def _grid(zone_name: str, step: timedelta, start: datetime, end: datetime) -> tuple[datetime, ...]:
    zone = ZoneInfo(zone_name)
    points: list[datetime] = []
    for day in _local_dates(start, end, zone):
        midnight = local_instant(day, time(0), zone)
        following = local_instant(day + timedelta(days=1), time(0), zone)
        if midnight is not None and following is not None and following - midnight == _DAY:
            # No DST change today: the wall clock and UTC move together.
            day_points: list[datetime] = []
            at = midnight
            while at < following:
                day_points.append(at)
                at += step
        else:
            day_points = _grid_slow(day, step, zone)
        points.extend(p for p in day_points if start <= p < end)
    return tuple(sorted(set(points)))


def _grid_slow(day: date, step: timedelta, zone: ZoneInfo) -> list[datetime]:
    """A DST-change day: each wall-clock point on its own; gaps skipped, folds twice."""
    wall = datetime.combine(day, time(0))
    next_day = wall + _DAY
    points = []
    while wall < next_day:
        points.extend(_instants(wall, zone))
        wall += step
    return points


def _instants(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """The UTC instants whose local reading is the naive `wall`: none (gap), one, or two (fold)."""
    found = []
    for fold in (0, 1):
        at = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if at.astimezone(zone).replace(tzinfo=None) == wall and at not in found:
            found.append(at)
    return found


def on_grid(rules: Rules, at: datetime) -> bool:
    """Whether the wall-clock reading of the instant `at` is on the grid (either fold)."""
    local = at.astimezone(rules.zone).replace(tzinfo=None)
    return not (local - datetime.combine(local.date(), time(0))) % rules.slot_step


# -- free starts ---------------------------------------------------------------------------------

Closed = tuple[datetime, datetime]  # [lo, hi], both included


def free_starts(
    rules: Rules,
    *,
    window: tuple[datetime, datetime],
    duration: timedelta,
    busy: Iterable[tuple[datetime, datetime]],
    now: datetime,
) -> list[Closed]:
    """The closed intervals of start times at which a booking of `duration` fits (any grid)."""
    if rules.min_duration is not None and duration < rules.min_duration:
        return []
    if rules.max_duration is not None and duration > rules.max_duration:
        return []
    lo = window[0] if rules.min_notice is None else max(window[0], now + rules.min_notice)
    hi = window[1] - duration
    if rules.max_advance is not None:
        hi = min(hi, now + rules.max_advance)
    if lo > hi:
        return []
    allowed: list[Closed] = []
    for a, b in opening(rules, window[0], window[1]):
        s, e = max(a, lo), min(b - duration, hi)
        if s <= e:
            allowed.append((s, e))
    before, after = rules.buffer_before, rules.buffer_after
    forbidden = sorted((x - duration - after, y + before) for x, y in busy)  # open intervals
    return _subtract(allowed, forbidden)


def _subtract(allowed: list[Closed], forbidden: list[tuple[datetime, datetime]]) -> list[Closed]:
    """Closed intervals minus open intervals, in one pass over both (sorted by start)."""
    merged: list[tuple[datetime, datetime]] = []
    for p, q in forbidden:
        if merged and p < merged[-1][1]:  # (p, q) meets the previous open interval
            merged[-1] = (merged[-1][0], max(q, merged[-1][1]))
        elif p < q:
            merged.append((p, q))
    out: list[Closed] = []
    j = 0
    for lo, hi in allowed:
        while j < len(merged) and merged[j][1] <= lo:
            j += 1
        cur, k = lo, j
        while k < len(merged) and merged[k][0] < hi and cur <= hi:
            p, q = merged[k]
            if p >= cur:
                out.append((cur, p))  # p itself is allowed: the interval is open
            cur = max(cur, q)  # so is q
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return out


def slots_in(starts: list[Closed], points: Sequence[datetime]) -> Iterator[datetime]:
    """The grid points that fall in the closed intervals (both ascending), lazily."""
    for lo, hi in starts:
        yield from points[bisect_left(points, lo) : bisect_right(points, hi)]


def merged_slots(
    per_resource: Sequence[Iterator[datetime]], *, mode: str, lazy: bool = True
) -> Iterator[tuple[datetime, list[int]]]:
    """Combine per-resource slot streams: each start with the indexes of the resources free then.

    mode "any": starts where at least one is free; "all": starts where every one is.
    `lazy` merges the streams as they are read (for a limit); otherwise all at once, faster.
    """
    if not lazy:
        free_at: dict[datetime, list[int]] = {}
        for i, stream in enumerate(per_resource):
            for t in stream:
                free_at.setdefault(t, []).append(i)
        for t in sorted(free_at):
            if mode == "any" or len(free_at[t]) == len(per_resource):
                yield t, free_at[t]
        return

    def tag(stream: Iterator[datetime], i: int) -> Iterator[tuple[datetime, int]]:
        return ((t, i) for t in stream)

    tagged = [tag(stream, i) for i, stream in enumerate(per_resource)]
    current: datetime | None = None
    free: list[int] = []
    for t, i in heapq.merge(*tagged):
        if t != current:
            if current is not None and (mode == "any" or len(free) == len(per_resource)):
                yield current, free
            current, free = t, []
        free.append(i)
    if current is not None and (mode == "any" or len(free) == len(per_resource)):
        yield current, free


def iso(duration: timedelta | None) -> str:
    """ISO 8601, as the API speaks it: PT15M, P1DT2H."""
    if duration is None:
        return "unlimited"
    seconds = int(duration.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes_, seconds = divmod(seconds, 60)
    clock = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes_, "M"), (seconds, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "" if days else "T0S")


def rfc3339(at: datetime, *, round_up: bool = False) -> str:
    """An instant as the API writes it: RFC 3339 in UTC with `Z` (2024-05-18T10:00:00Z).

    `round_up` drops a fraction of a second by moving to the next whole second.
    """
    at = at.astimezone(UTC)
    if round_up and at.microsecond:
        at = at.replace(microsecond=0) + timedelta(seconds=1)
    return at.isoformat().replace("+00:00", "Z")


# -- checking one booking ------------------------------------------------------------------------


def check_booking(rules: Rules, *, start: datetime, end: datetime, now: datetime) -> None:
    """Raise the rule a booking of [start, end) breaks, if any. Overlaps are checked elsewhere."""
    duration = end - start
    if (rules.min_duration is not None and duration < rules.min_duration) or (
        rules.max_duration is not None and duration > rules.max_duration
    ):
        raise DurationOutOfRange(
            f"The duration must be between {iso(rules.min_duration or ZERO)} and "
            f"{iso(rules.max_duration)} for this resource."
        )
    if rules.min_notice is not None and start < now + rules.min_notice:
        earliest = rfc3339(now + rules.min_notice, round_up=True)
        raise TooSoon(
            f"Bookings must start at least {iso(rules.min_notice)} from now: "
            f"at {earliest} or later.",
            earliest_start=earliest,
        )
    if rules.max_advance is not None and start > now + rules.max_advance:
        raise TooFarAhead(f"Bookings may start at most {iso(rules.max_advance)} from now.")
    if not any(a <= start and end <= b for a, b in opening(rules, start, end)):
        raise OutsideAvailability("The time is outside the resource's opening hours.")
    if not on_grid(rules, start):
        raise OutsideAvailability(
            f"Bookings start on the resource's {iso(rules.slot_step)} grid (local time)."
        )
