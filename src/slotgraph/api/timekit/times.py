"""Timekit's ways of saying when and how long: timestamps, "now", "2 hours", "3 days 2 weeks".

Pure translation into aware UTC datetimes and timedeltas. A timestamp must carry its offset, as
everywhere in slotgraph; a relative time counts from `now`. Months and years are refused: their
length depends on the calendar, and Timekit's own limits are a few months anyway.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from slotgraph.bounds import LATEST, RANGE, in_range
from slotgraph.errors import ValidationFailed

_UNITS = {
    "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}
_PART = re.compile(r"\s*(\d{1,6})\s*(second|minute|min|hour|day|week)s?\s*", re.IGNORECASE)
# A duration's bound: what one part may say ("999999 weeks"). A bare number of minutes past
# timedelta's range (2**63 - 1 passes the guard's 64 bits) was OverflowError, a 500, and so was
# a sum of parts ("999999 weeks" 150 times). The checks after this one say what fits.
_LONGEST = 999_999 * _UNITS["week"]


def duration(text: object, field: str) -> timedelta:
    """`"2 hours"`, `"1 hour 30 minutes"`, `"90 minutes"` (a bare number of minutes too)."""
    if isinstance(text, int) and not isinstance(text, bool) and text > 0:
        if text > 999_999:
            raise ValidationFailed.one(field, "at most 999999 minutes")
        return timedelta(minutes=text)
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed.one(field, 'a duration such as "30 minutes" or "2 hours"')
    total, pos = timedelta(0), 0
    while pos < len(text):
        m = _PART.match(text, pos)
        if m is None:
            raise ValidationFailed.one(
                field, f'{text!r} is not a duration such as "30 minutes" or "2 hours"'
            )
        total += int(m.group(1)) * _UNITS[m.group(2).lower()]
        if total > _LONGEST:
            raise ValidationFailed.one(field, "at most 999999 weeks")
        pos = m.end()
    if total <= timedelta(0):
        raise ValidationFailed.one(field, "must be longer than zero")
    return total


def bounded(check: Callable[[timedelta], timedelta], value: timedelta, field: str) -> timedelta:
    """`value` if `check` (one of slotgraph.bounds' checks) accepts it; else 422 on `field`."""
    try:
        return check(value)
    except ValueError as exc:
        raise ValidationFailed.one(field, str(exc)) from None


def instant(text: object, field: str, *, now: datetime) -> datetime:
    """A timestamp with an offset, `"now"`, or a time relative to now (`"1 week"`)."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed.one(field, "a timestamp with an offset, or a relative time")
    if text.strip().lower() == "now":
        return now
    if text.strip()[:1].isdigit() and _PART.match(text):
        try:
            ahead = duration(text, field)
        except ValidationFailed:
            pass
        else:
            if ahead >= LATEST - now:
                raise ValidationFailed.one(field, f"must be {RANGE}")
            return now + ahead
    return timestamp(text, field)


def timestamp(text: object, field: str) -> datetime:
    """An absolute time with its offset (`2024-05-18T10:00:00+02:00`), as UTC."""
    try:
        parsed = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed.one(
            field, f"{text!r} is not a timestamp such as 2024-05-18T10:00:00+02:00"
        ) from None
    if parsed.tzinfo is None:
        raise ValidationFailed.one(field, "the timestamp needs an offset, e.g. +02:00 or Z")
    if not in_range(parsed):  # checked before converting: year 1 or 9999 would overflow
        raise ValidationFailed.one(field, f"must be {RANGE}")
    return parsed.astimezone(UTC)


def each(*parsers: Callable[[], datetime]) -> list[datetime]:
    """Every timestamp parsed, or one 422 naming each that was not (a start and an end both
    wrong are two errors in one answer, not one answer per retry)."""
    values: list[datetime] = []
    errors: list[tuple[str, str]] = []
    for parser in parsers:
        try:
            values.append(parser())
        except ValidationFailed as exc:
            errors += exc.errors
    if errors:
        raise ValidationFailed(errors)
    return values
