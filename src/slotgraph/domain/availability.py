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

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from slotgraph.domain import wallclock as wc
from slotgraph.domain.combine import Points
from slotgraph.errors import Conflict, SlotgraphError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZERO = timedelta(0)
DEFAULT_STEP = timedelta(minutes=15)
_DAY = timedelta(days=1)

Hours = Sequence[tuple[time, time | None]]  # (start, end); end None means 24:00
Bound = TypeVar("Bound", int, datetime)  # an interval's ends: epoch seconds or instants


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


class DurationNotWholeMinutes(SlotgraphError):
    status = 422
    code = "duration_not_whole_minutes"
    title = "Duration not in whole minutes"


MINUTE = timedelta(minutes=1)


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


def _local_dates(start: datetime, end: datetime, zone: ZoneInfo) -> Iterator[date]:
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        yield day
        day += timedelta(days=1)


def opening(rules: Rules, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The resource's opening hours overlapping [start, end), as merged UTC intervals."""
    return [(wc.instant(lo), wc.instant(hi)) for lo, hi in opening_seconds(rules, start, end)]


def opening_seconds(rules: Rules, start: datetime, end: datetime) -> list[tuple[int, int]]:
    """`opening` in epoch seconds: merged half-open intervals [lo, hi)."""
    zone, name = rules.zone, rules.timezone
    lo_s, hi_s = wc.floor_seconds(start), wc.ceil_seconds(end)
    if rules.weekly_hours is None and not rules.exceptions:
        # open around the clock: the local days from the one holding lo_s to the one holding
        # hi_s - 1, which follow each other without a gap (what the loop below would merge)
        first = wc.day(name, wc.local_date(name, lo_s))
        return [(first.start, wc.day(name, wc.local_date(name, hi_s - 1)).end)]
    spans = []
    for day in _local_dates(start, end, zone):
        for a, b in rules.hours_on(day):
            lo, hi = wc.boundary(name, day, a), wc.boundary(name, day, b)
            if lo < hi and lo < hi_s and hi > lo_s:
                spans.append((lo, hi))
    return merge(spans)


def merge(spans: Iterable[tuple[Bound, Bound]]) -> list[tuple[Bound, Bound]]:
    """Union of half-open intervals (instants or epoch seconds); touching ones join."""
    out: list[tuple[Bound, Bound]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _step_seconds(rules: Rules, step: timedelta | None) -> int:
    return (step or rules.slot_step) // wc.SECOND


def grid(
    rules: Rules, start: datetime, end: datetime, step: timedelta | None = None
) -> list[datetime]:
    """Start times on the grid in [start, end), ascending: local midnight + k * step, each day.

    Every instant whose wall-clock reading is on the grid: wall-clock points that do not exist
    are skipped; ambiguous ones (the autumn fold) are both starts.
    """
    span = (wc.ceil_seconds(start), wc.ceil_seconds(end) - 1)
    runs = wc.grid_runs(rules.timezone, _step_seconds(rules, step), [span])
    return [wc.instant(t) for run in runs for t in run]


def on_grid(rules: Rules, at: datetime) -> bool:
    """Whether the wall-clock reading of the instant `at` is on the grid (either fold)."""
    seconds = wc.floor_seconds(at)
    return at == wc.instant(seconds) and wc.on_grid(
        rules.timezone, _step_seconds(rules, None), seconds
    )


# -- free starts ---------------------------------------------------------------------------------

Closed = tuple[datetime, datetime]  # [lo, hi], both included
# A busy span [lo, hi) in epoch microseconds (exact: what a database holds).
Micros = tuple[int, int]


def free_starts(
    rules: Rules,
    *,
    window: tuple[datetime, datetime],
    duration: timedelta,
    busy: Iterable[tuple[datetime, datetime]],
    now: datetime,
) -> list[Closed]:
    """The closed intervals of start times at which a booking of `duration` fits (any grid);
    whole seconds, as `free_seconds` computes them."""
    spans = free_seconds(
        rules,
        window=window,
        duration=duration,
        busy=[(wc.micros(x), wc.micros(y)) for x, y in busy],
        now=now,
    )
    return [(wc.instant(lo), wc.instant(hi)) for lo, hi in spans]


def free_seconds(
    rules: Rules,
    *,
    window: tuple[datetime, datetime],
    duration: timedelta,
    busy: Iterable[Micros],
    now: datetime,
    opened: list[tuple[int, int]] | None = None,
) -> list[tuple[int, int]]:
    """The whole seconds at which a booking of `duration` may start (any grid), as ascending
    disjoint closed intervals [lo, hi] of epoch seconds.

    Computed in integer microseconds, exactly as the instants compare (a database keeps
    microseconds), then each interval is narrowed to the whole seconds inside it. `opened` is
    `opening_seconds(rules, *window)` when the caller has it already (resources that share their
    hours share it).
    """
    if rules.min_duration is not None and duration < rules.min_duration:
        return []
    if rules.max_duration is not None and duration > rules.max_duration:
        return []
    us = wc.MICROS
    d = duration // wc.MICRO
    lo = window[0] if rules.min_notice is None else max(window[0], now + rules.min_notice)
    hi = window[1] - duration
    if rules.max_advance is not None:
        hi = min(hi, now + rules.max_advance)
    if lo > hi:
        return []
    lo_us, hi_us = wc.micros(lo), wc.micros(hi)
    allowed: list[tuple[int, int]] = []
    for a, b in opening_seconds(rules, *window) if opened is None else opened:
        s, e = max(a * us, lo_us), min(b * us - d, hi_us)
        if s <= e:
            allowed.append((s, e))
    before, after = rules.buffer_before // wc.MICRO, rules.buffer_after // wc.MICRO
    return _subtract(allowed, sorted(busy), d + after, before)


def _subtract(
    allowed: list[tuple[int, int]], busy: list[Micros], early: int, late: int
) -> list[tuple[int, int]]:
    """The whole seconds in the closed intervals `allowed` (microseconds) that no busy span
    forbids: [x, y) forbids the open interval (x - early, y + late). One pass over both, sorted
    by start (a span inside an earlier one's reach forbids nothing more)."""
    out: list[tuple[int, int]] = []
    us = wc.MICROS
    n, j = len(busy), 0
    for lo, hi in allowed:
        while j < n and busy[j][1] + late <= lo:  # forbids nothing from lo on
            j += 1
        cur, k = lo, j
        while k < n:
            p, q = busy[k]
            p, q = p - early, q + late
            if p >= hi or cur > hi:
                break
            if p < q:  # (an empty open interval forbids nothing)
                if p >= cur:  # [cur, p] is free: p itself is, the interval is open
                    s, e = -(-cur // us), p // us
                    if s <= e:
                        out.append((s, e))
                if q > cur:
                    cur = q  # so is q
            k += 1
        if cur <= hi:
            s, e = -(-cur // us), hi // us
            if s <= e:
                out.append((s, e))
    return out


def slot_points(
    rules: Rules, starts: list[Closed], step: timedelta | None = None
) -> Iterator[Points]:
    """The grid starts inside the closed intervals (ascending), as runs of epoch seconds, lazily."""
    spans = [(wc.ceil_seconds(lo), wc.floor_seconds(hi)) for lo, hi in starts]
    return slot_runs(rules, spans, step)


def slot_runs(
    rules: Rules, spans: Sequence[tuple[int, int]], step: timedelta | None = None
) -> Iterator[Points]:
    """The grid starts inside closed intervals of epoch seconds (ascending), as runs, lazily."""
    return wc.grid_runs(rules.timezone, _step_seconds(rules, step), spans)


def slots_in(starts: list[Closed], points: Sequence[datetime]) -> Iterator[datetime]:
    """The given points that fall in the closed intervals (both ascending), lazily."""
    for lo, hi in starts:
        yield from points[bisect_left(points, lo) : bisect_right(points, hi)]


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


def check_booking(
    rules: Rules, *, start: datetime, end: datetime, now: datetime, length_kept: bool = False
) -> None:
    """Raise the rule a booking of [start, end) breaks, if any. Overlaps are checked elsewhere.

    A booking under the rules lasts whole minutes, at least one (as calendars and the slot grid,
    whose steps are whole minutes, count time): a 1-microsecond booking was accepted before.
    That is judged when a length is set: a move that keeps the booking's length (`length_kept`;
    a length `override_rules` allowed) is not refused for it, as its customer could not change
    it. The resource's own rules (min_duration, max_duration, ...) are checked on every move."""
    duration = end - start
    if not length_kept and (duration < MINUTE or duration % MINUTE):
        raise DurationNotWholeMinutes(
            "A booking under the resource's rules lasts whole minutes, at least PT1M "
            "(`override_rules`, with the secret key, allows any length)."
        )
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
