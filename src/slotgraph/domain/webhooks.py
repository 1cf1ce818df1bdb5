"""Webhook rules: event filters, which endpoint gets which event, its signing secrets, when to
switch it off. Pure. (The retry schedule is shared by every channel: domain/deliveries.py.)"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

DISABLE_AFTER_FAILING = timedelta(days=5)

_FILTER = re.compile(r"^(\*|[a-z_]+\.(\*|[a-z_]+))$")


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


def wants(
    *, filters: list[str] | None, subscribed_at: datetime, event_type: str, event_at: datetime
) -> bool:
    """Does an endpoint created at `subscribed_at` with `filters` get this event?

    Events older than the endpoint are not sent to it (only `retry` sends one explicitly).
    """
    return subscribed_at <= event_at and matches(filters, event_type)


def signing_secrets(
    *, secret: str, previous: str | None, previous_expires_at: datetime | None, now: datetime
) -> list[str]:
    """The secrets that sign a delivery: the current one, plus the previous one while a
    rotation's overlap lasts."""
    if previous and previous_expires_at is not None and previous_expires_at > now:
        return [secret, previous]
    return [secret]
