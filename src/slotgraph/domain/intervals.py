"""Half-open time intervals `[start, end)`."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


class Span(NamedTuple):
    start: datetime
    end: datetime

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end

    @property
    def empty(self) -> bool:
        return self.end <= self.start
