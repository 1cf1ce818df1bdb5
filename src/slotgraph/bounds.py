"""The accepted range of every date, time and duration the API takes, in one place.

Schemas build their fields from these types; a value outside is `422 validation_error` naming the
field, never a 500. docs/api.md ("Accepted ranges") lists the same bounds for users.

- Datetimes and dates: from 1900-01-01T00:00:00Z up to, not including, 2200-01-01T00:00:00Z.
  Every sum the engine makes from them (a booking plus its buffers, a search window plus a day on
  each side, now plus the longest advance) stays far from Python's year 9999, and the range is
  checked before a value is converted to UTC (which itself overflows at year 1 and 9999).
- Durations: each field has its own upper bound. They are stored as whole seconds in an INTEGER
  column, 32 bits on PostgreSQL (at most 2**31 - 1 s, about 68 years); every bound is far below.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from slotgraph.domain.availability import iso

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)  # excluded
ZERO = timedelta(0)

# Upper bounds per duration field (all inclusive).
MAX_BUFFER = timedelta(days=7)  # buffer_before, buffer_after
MAX_NOTICE = timedelta(days=365)  # min_notice
MAX_ADVANCE = timedelta(days=3650)  # max_advance
MAX_RULE_DURATION = timedelta(days=365)  # a resource's min_duration, max_duration
MAX_SLOT_STEP = timedelta(days=1)  # slot_step, and `step` of a search (from PT1M)
MAX_PAYMENT_TIMEOUT = timedelta(days=30)  # payment_timeout
MAX_SEAT_NOTICE = timedelta(days=365)  # min_cancel_time, min_booking_time
MAX_SEAT_ADVANCE = timedelta(days=3650)  # max_booking_time
MAX_SECONDS_COLUMN = timedelta(seconds=2**31 - 1)  # what a Seconds column can hold
# A booking's length (end - start) unless its resource's max_duration allows more; the work of
# placing and checking a booking grows with it, so it is bounded even with override_rules.
MAX_BOOKING_LENGTH = timedelta(days=31)
MAX_PUBLIC_PAYMENT_TIMEOUT = timedelta(days=1)  # payment_timeout asked with the public key
MAX_SEATS = 10_000  # max_seats of a class (group_owner)
# A window [start, end) read at once: an availability search, the classes, free/busy.
MAX_WINDOW = timedelta(days=93)

RANGE = "from 1900-01-01T00:00:00Z to before 2200-01-01T00:00:00Z"


def in_range(value: datetime) -> bool:
    """Whether an aware datetime is in the accepted range (compared without converting it)."""
    return EARLIEST <= value < LATEST


def _text(value: object) -> object:
    """A date-time is text (RFC 3339); pydantic would read a number as a Unix timestamp."""
    if isinstance(value, int | float) or (
        isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit()
    ):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2024-05-18T10:00:00Z")
    return value


def _instant(value: datetime) -> datetime:
    if not in_range(value):
        raise ValueError(f"must be {RANGE}")
    return value.astimezone(UTC)


def _day(value: date) -> date:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValueError("must be from 1900-01-01 to 2199-12-31")
    return value


def _within(most: timedelta, *, positive: bool) -> Callable[[timedelta], timedelta]:
    def check(value: timedelta) -> timedelta:
        if positive and value <= ZERO:
            raise ValueError("must be a positive duration")
        if value < ZERO:
            raise ValueError("must not be negative")
        if value > most:
            raise ValueError(f"must be at most {iso(most)}")
        if value % timedelta(seconds=1):
            raise ValueError("must be whole seconds")
        return value

    return check


def window_error(start: datetime, end: datetime) -> str | None:
    """What is wrong with a window [start, end) (a 422 naming `end`), or None."""
    if end <= start:
        return "must be after start"
    if end - start > MAX_WINDOW:
        return f"the window is at most {MAX_WINDOW.days} days"
    return None


def slot_step(value: timedelta) -> timedelta:
    if not timedelta(minutes=1) <= value <= MAX_SLOT_STEP or value % timedelta(minutes=1):
        raise ValueError("must be whole minutes, from PT1M to P1D")
    return value


# An instant with an explicit offset (naive input is refused), in range, normalised to UTC.
Instant = Annotated[AwareDatetime, BeforeValidator(_text), AfterValidator(_instant)]
Day = Annotated[date, AfterValidator(_day)]

# The checks themselves, for ways in that parse durations of their own (the /v2 adapter).
buffer = _within(MAX_BUFFER, positive=False)

Buffer = Annotated[timedelta, AfterValidator(buffer)]
Notice = Annotated[timedelta, AfterValidator(_within(MAX_NOTICE, positive=False))]
Advance = Annotated[timedelta, AfterValidator(_within(MAX_ADVANCE, positive=True))]
RuleDuration = Annotated[timedelta, AfterValidator(_within(MAX_RULE_DURATION, positive=True))]
SlotStep = Annotated[timedelta, AfterValidator(slot_step)]
PaymentTimeout = Annotated[timedelta, AfterValidator(_within(MAX_PAYMENT_TIMEOUT, positive=True))]
SeatNotice = Annotated[timedelta, AfterValidator(_within(MAX_SEAT_NOTICE, positive=False))]
SeatAdvance = Annotated[timedelta, AfterValidator(_within(MAX_SEAT_ADVANCE, positive=False))]
Reminder = Annotated[timedelta, AfterValidator(_within(MAX_NOTICE, positive=True))]  # before start

# Every bound must fit the column it is stored in (checked at import, so a bad edit fails loudly).
assert max(MAX_BUFFER, MAX_NOTICE, MAX_ADVANCE, MAX_RULE_DURATION, MAX_SEAT_ADVANCE) < (
    MAX_SECONDS_COLUMN
)
