"""Busy time in a calendar object: which intervals one iCalendar text keeps busy. Pure.

- Recurring events are expanded over the horizon with `recurring-ical-events` (RRULE, RDATE,
  EXDATE, and exceptions given as RECURRENCE-ID overrides, cancelled or moved).
- All-day events (DTSTART as a date) and floating times are read in the resource's zone: a
  holiday on 2024-05-17 is busy from local midnight to local midnight.
- TRANSP:TRANSPARENT ("free") and STATUS:CANCELLED events are ignored, and so are events that
  slotgraph pushed itself (X-SLOTGRAPH-BOOKING-ID).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar

# Bounds on one calendar object: a daily event over a year is 366 occurrences.
MAX_OBJECT_BYTES = 1_000_000
MAX_OCCURRENCES = 2_000
PUSHED_MARK = "X-SLOTGRAPH-BOOKING-ID"


class BadObject(ValueError):
    """The calendar object is not one we can read (not iCalendar, or too large)."""


@dataclass(frozen=True, slots=True)
class Busy:
    uid: str
    start: datetime  # UTC
    end: datetime


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


def busy_in(ics: str, *, zone: ZoneInfo, horizon: tuple[datetime, datetime]) -> list[Busy]:
    """The busy intervals of one calendar object within the horizon, ordered by start."""
    import recurring_ical_events  # on first use: it is slow to import, and only the worker pulls

    if len(ics) > MAX_OBJECT_BYTES:
        raise BadObject(f"larger than {MAX_OBJECT_BYTES} bytes")
    try:
        calendar = icalendar.Calendar.from_ical(ics)
        occurrences = recurring_ical_events.of(calendar, skip_bad_series=True).between(*horizon)
    except (ValueError, KeyError, TypeError) as exc:
        raise BadObject(f"not readable iCalendar: {exc}"[:200]) from exc
    out = []
    for count, event in enumerate(occurrences):
        if count >= MAX_OCCURRENCES:
            break
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
    return sorted(out, key=lambda b: (b.start, b.end))
