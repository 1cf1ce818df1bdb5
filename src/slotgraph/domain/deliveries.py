"""The delivery rules every channel shares: an attempt's outcome, the retry schedule. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple


class Outcome(NamedTuple):
    """What one attempt to send got: a status code or an error, how long it took, and the
    start of the answer. A named tuple, built for every attempt: 3.5 thousand instructions
    against 7.9 for the frozen dataclass it was (callgrind, 20,000 built)."""

    status_code: int | None
    error: str | None
    duration_ms: int
    response_body: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


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


def next_retry_at(attempt: int, now: datetime, jitter: float) -> datetime | None:
    """When to try again after failed attempt number `attempt` (1-based); None: give up.

    `jitter` is a number in [-1, 1] chosen by the caller (random in production).
    """
    if attempt >= MAX_ATTEMPTS:
        return None
    delay = RETRY_SCHEDULE[attempt - 1]
    return now + delay * (1 + JITTER * max(-1.0, min(1.0, jitter)))
