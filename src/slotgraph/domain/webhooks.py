"""Webhook rules: the retry schedule, event filters, when to give up. Pure."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

# After the first attempt fails, retry after these delays; after the last, give up.
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
JITTER = 0.1  # each delay is stretched or shrunk by up to 10 %
DISABLE_AFTER_FAILING = timedelta(days=5)

_FILTER = re.compile(r"^(\*|[a-z_]+\.(\*|[a-z_]+))$")


def next_retry_at(attempt: int, now: datetime, jitter: float) -> datetime | None:
    """When to try again after failed attempt number `attempt` (1-based); None: give up.

    `jitter` is a number in [-1, 1] chosen by the caller (random in production).
    """
    if attempt >= MAX_ATTEMPTS:
        return None
    delay = RETRY_SCHEDULE[attempt - 1]
    return now + delay * (1 + JITTER * max(-1.0, min(1.0, jitter)))


def valid_filter(pattern: str) -> bool:
    """`*`, `booking.*`, or an exact type such as `booking.confirmed`."""
    return bool(_FILTER.match(pattern))


def matches(filters: list[str] | None, event_type: str) -> bool:
    """Does an endpoint subscribed to `filters` (None: everything) want this event?"""
    if filters is None:
        return True
    for f in filters:
        if f == "*" or f == event_type:
            return True
        if f.endswith(".*") and event_type.startswith(f[:-1]):
            return True
    return False


def should_disable(
    *, status_code: int | None, failing_since: datetime | None, now: datetime
) -> str | None:
    """The reason to switch an endpoint off after a failed attempt, or None."""
    if status_code == 410:
        return "The receiver answered 410 Gone."
    if failing_since is not None and now - failing_since >= DISABLE_AFTER_FAILING:
        return "No successful delivery for 5 days."
    return None
