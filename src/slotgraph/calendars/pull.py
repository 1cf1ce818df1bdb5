"""Busy time in a calendar object: which intervals one iCalendar text keeps busy. Pure.

- Recurring events are expanded over the horizon with `recurring-ical-events` (RRULE, RDATE,
  EXDATE, and exceptions given as RECURRENCE-ID overrides, cancelled or moved).
- All-day events (DTSTART as a date) and floating times are read in the resource's zone: a
  holiday on 2024-05-17 is busy from local midnight to local midnight.
- TRANSP:TRANSPARENT ("free") and STATUS:CANCELLED events are ignored, and so are events that
  slotgraph pushed itself (X-SLOTGRAPH-BOOKING-ID).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    import icalendar

# Bounds on one calendar object: a daily event over a year is 366 occurrences. Past
# MAX_OCCURRENCES the earliest are kept (the horizon starts a day back: the nearest ones), and
# how many later ones were left out is said in the connection's `last_error`.
MAX_OBJECT_BYTES = 1_000_000
MAX_OCCURRENCES = 2_000
PUSHED_MARK = "X-SLOTGRAPH-BOOKING-ID"
# Which connection pushed it: a disconnect's removal deletes only its own connection's (or
# unmarked, older) pushes, and only as it listed them (calendars/remote.py remove_pushed).
CONNECTION_MARK = "X-SLOTGRAPH-CONNECTION-ID"

# Bounds on the work of expanding recurrences. dateutil steps from DTSTART through every period
# of a rule's FREQ (times each value of its BY parts) up to the horizon's end or its COUNT-th
# occurrence, and every step inside the horizon becomes an occurrence: FREQ=SECONDLY held the
# worker's event loop (serve's, for every app) for good, FREQ=MINUTELY;COUNT=100000 for 4 s of
# CPU. `steps` counts what dateutil would walk (an overestimate: a BY part that only filters
# counts as one that expands); a calendar object over these is not read (`BadObject`), and a
# pull stops reading objects once its `Budget` is spent.
MAX_STEPS = 50_000  # per calendar object, DTSTART to the horizon's end
MAX_STEPS_IN_HORIZON = 5_000  # per calendar object, inside the horizon
MAX_STEPS_PER_PULL = 500_000
# Bounds on the work of reading objects at all, whatever their recurrences: parsing costs about
# 0.25 ms of CPU an event (1 MB of single events, the largest object: 2.0-2.9 s), and a pull
# reads up to 32 MB of answers, so a calendar of single events held a CalDAV thread for a
# minute of CPU a sync. A pull reads at most this much of its objects' text and this many of
# their events (VEVENTs: about 5 s of CPU), then reads no more objects.
MAX_BYTES_PER_PULL = 4_000_000
MAX_EVENTS_PER_PULL = 20_000
# An event's BEGIN line, as icalendar reads one: after unfolding (a line break, blank lines
# too, then a space or a tab), any case, with or without parameters (`BEGIN;X-A="a:b":VEVENT`).
# A line that only mentions VEVENT is counted too: more is refused sooner, never less. A fold
# is matched from the first line break of a run only: tried at every break of a run, a run of
# blank lines not followed by a space cost quadratic time (1 MB of them: hours of CPU).
_FOLD = re.compile(r"(?<![\r\n])[\r\n]+[ \t]")
_VEVENT = re.compile(r"^BEGIN[;:][^\r\n]*VEVENT", re.IGNORECASE | re.MULTILINE)
_PERIOD = {
    "SECONDLY": 1,
    "MINUTELY": 60,
    "HOURLY": 3_600,
    "DAILY": 86_400,
    "WEEKLY": 7 * 86_400,
    "MONTHLY": 28 * 86_400,
    "YEARLY": 365 * 86_400,
}
_ONE_EACH = frozenset({"SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY"})
_BY_PARTS = (
    "BYSECOND",
    "BYMINUTE",
    "BYHOUR",
    "BYDAY",
    "BYMONTHDAY",
    "BYYEARDAY",
    "BYWEEKNO",
    "BYMONTH",
    "BYSETPOS",
)


class BadObject(ValueError):
    """The calendar object is not one we can read (not iCalendar, too large, or its
    recurrences repeat too often to expand)."""


class PullSpent(BadObject):
    """The pull has read all it reads (`Budget`): this object was not read, nothing is known
    of it, and what it kept busy before stays (services/calendar_pulled.py)."""


@dataclass
class Budget:
    """What is left of one pull's work: expansion steps (`MAX_STEPS_PER_PULL`), and the text
    and events of its objects (`MAX_BYTES_PER_PULL`, `MAX_EVENTS_PER_PULL`)."""

    steps: int = field(default_factory=lambda: MAX_STEPS_PER_PULL)
    text: int = field(default_factory=lambda: MAX_BYTES_PER_PULL)
    events: int = field(default_factory=lambda: MAX_EVENTS_PER_PULL)
    spent: bool = False  # past the text or the events: no further object is read

    def take(self, ics: str) -> None:
        """Count one object's text and events, or raise BadObject if the pull has read all it
        reads (counted before parsing: the count unfolds and scans the text, 19 ms of CPU a
        MB where parsing takes 2-3 s)."""
        events = len(_VEVENT.findall(_FOLD.sub("", ics)))
        if events > MAX_EVENTS_PER_PULL or len(ics) > MAX_BYTES_PER_PULL:
            # No pull reads it, alone or first: refused on its own (it keeps nothing busy).
            # Before, it spent the budget of every pull that met it, so one object of 20,001
            # bare VEVENTs (0.5 MB) kept every object after it unread, at each pull; read in
            # turns, each turn would have begun with it, and read nothing.
            raise BadObject(
                f"more than a pull reads on its own: over {MAX_BYTES_PER_PULL:,} bytes or "
                f"{MAX_EVENTS_PER_PULL:,} events"
            )
        if self.spent or len(ics) > self.text or events > self.events:
            self.spent = True
            raise PullSpent(
                f"this calendar is larger than a pull reads: more than "
                f"{MAX_BYTES_PER_PULL:,} bytes or {MAX_EVENTS_PER_PULL:,} events in all; the "
                "rest of its objects were not read"
            )
        self.text -= len(ics)
        self.events -= events


@dataclass(frozen=True, slots=True)
class Busy:
    uid: str
    start: datetime  # UTC
    end: datetime


@dataclass(frozen=True, slots=True)
class ObjectBusy:
    """What one calendar object keeps busy: the earliest `MAX_OCCURRENCES`, ordered by start,
    and how many later ones were `left_out`."""

    busy: list[Busy]
    left_out: int = 0

    def note(self) -> str | None:
        """What `last_error` says of the occurrences left out, if any."""
        if not self.left_out:
            return None
        return (
            f"{self.left_out:,} busy times after {self.busy[-1].start:%Y-%m-%dT%H:%MZ} were left "
            f"out (at most {MAX_OCCURRENCES:,} per calendar object, the earliest kept)"
        )


def _instant(value: date | datetime, zone: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # floating time: the resource's wall clock
            value = value.replace(tzinfo=zone)
        return value.astimezone(UTC)
    return datetime.combine(value, time(0), tzinfo=zone).astimezone(UTC)


def _span(event: icalendar.Event, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
    start = event.decoded("DTSTART", None)
    if not isinstance(start, date):
        return None
    if "DTEND" in event:
        end = event.decoded("DTEND")
    elif "DURATION" in event:
        end = start + event.decoded("DURATION")
    elif isinstance(start, datetime):
        return None  # an instant, not a span: it keeps no time busy (RFC 5545 3.6.1)
    else:
        end = start + timedelta(days=1)
    lo, hi = _instant(start, zone), _instant(end, zone)
    return (lo, hi) if hi > lo else None


def _rule_steps(
    rule: icalendar.vRecur, start: datetime, horizon: tuple[datetime, datetime]
) -> tuple[int, int]:
    """The steps dateutil takes for one RRULE starting at `start`: in all, and in the horizon."""
    freq = str(rule.get("FREQ", [""])[0]).upper()
    period = _PERIOD.get(freq)
    if period is None:
        return 0, 0  # not a rule dateutil can expand: the library skips the series
    period *= max(1, int(rule.get("INTERVAL", [1])[0]))
    stop = horizon[1]
    if until := rule.get("UNTIL"):
        stop = min(stop, _instant(until[0], ZoneInfo("UTC")))
    expands = 1
    for part in _BY_PARTS:
        expands *= max(1, len(rule.get(part, ())))
    # With COUNT and no BY part, each period of a fixed length holds exactly one occurrence
    # (DTSTART's time in it), so the COUNT-th step is the last: FREQ=HOURLY;COUNT=3 is three
    # steps, not every hour of the year. (A month or a year may hold none: the 31st, 29 February.)
    most = None
    if (count := rule.get("COUNT")) and expands == 1 and freq in _ONE_EACH:
        most = max(0, int(count[0]))

    def steps(since: datetime) -> int:
        seconds = (stop - since).total_seconds()
        walked = 0 if seconds < 0 else (int(seconds) // period + 1) * expands
        return walked if most is None else min(walked, most)

    return steps(start), steps(max(start, horizon[0]))


def _check_steps(
    calendar: icalendar.Calendar, horizon: tuple[datetime, datetime], budget: Budget
) -> None:
    """Raise BadObject if expanding the object's recurrences would take more than the bounds."""
    total = inside = 0
    for event in calendar.walk("VEVENT"):
        rules = event.get("RRULE") or []
        rdates = event.get("RDATE") or []
        if not rules and not rdates:
            continue
        start = event.decoded("DTSTART", None)
        if not isinstance(start, date):
            continue
        begin = _instant(start, ZoneInfo("UTC"))
        for rule in rules if isinstance(rules, list) else [rules]:
            all_, in_ = _rule_steps(rule, begin, horizon)
            total, inside = total + all_, inside + in_
        for listed in rdates if isinstance(rdates, list) else [rdates]:
            total, inside = total + len(listed.dts), inside + len(listed.dts)
    if total > MAX_STEPS or inside > MAX_STEPS_IN_HORIZON:
        raise BadObject(
            f"its recurrences repeat too often to expand: about {total:,} steps "
            f"({inside:,} within the next year); at most {MAX_STEPS:,} "
            f"({MAX_STEPS_IN_HORIZON:,})"
        )
    if total > budget.steps:
        raise PullSpent(
            f"this calendar's recurrences repeat too often to expand: more than "
            f"{MAX_STEPS_PER_PULL:,} steps in all; the rest of its objects were not read"
        )
    budget.steps -= total


def busy_in(
    ics: str, *, zone: ZoneInfo, horizon: tuple[datetime, datetime], budget: Budget
) -> ObjectBusy:
    """The busy intervals of one calendar object within the horizon, ordered by start, the
    earliest `MAX_OCCURRENCES` of them; the expansion's steps are taken from the pull's
    `budget`. Before, the first 2,000 in the library's order were kept (series by series, an
    occurrence where its RECURRENCE-ID was), so a far occurrence moved to next week was lost,
    and nothing said so. Sorting all costs little beside the expansion, whose list is whole
    already (an object of 1 MB of single events: 2.6-2.9 s of CPU before, measured with it)."""
    # On first use: slow to import (icalendar too, and only the worker pulls).
    import icalendar
    import recurring_ical_events

    if len(ics) > MAX_OBJECT_BYTES:
        raise BadObject(f"larger than {MAX_OBJECT_BYTES} bytes")
    budget.take(ics)
    try:
        calendar = icalendar.Calendar.from_ical(ics)
        _check_steps(calendar, horizon, budget)
        occurrences = recurring_ical_events.of(calendar, skip_bad_series=True).between(*horizon)
    except BadObject:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise BadObject(f"not readable iCalendar: {exc}"[:200]) from exc
    out = []
    for event in occurrences:
        if PUSHED_MARK in event:
            continue
        if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
            continue
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            continue
        span = _span(event, zone)
        if span is None:
            continue
        out.append(Busy(str(event.get("UID", "")), *span))
    out.sort(key=lambda b: (b.start, b.end))
    return ObjectBusy(out[:MAX_OCCURRENCES], max(0, len(out) - MAX_OCCURRENCES))
