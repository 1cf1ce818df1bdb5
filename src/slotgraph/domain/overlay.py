"""Narrowing a resource's rules for one query: a weekly mask of local hours and a minimum buffer.

A way in (the Timekit adapter's availability `constraints`) may ask for slots inside some hours
only, or with more room between bookings. It never widens what the resource allows: the mask is
intersected with the resource's own hours (weekly and per-date exceptions alike), and a buffer
only ever grows. Pure; local times as in `domain.availability` (end None means 24:00).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import time, timedelta

from slotgraph.domain.availability import WEEKDAYS, Hours, Rules

Minutes = list[tuple[int, int]]  # [start, end) in minutes from local midnight, end up to 1440
_ALL_DAY = 24 * 60


def to_minutes(hours: Hours) -> Minutes:
    return sorted(
        (a.hour * 60 + a.minute, _ALL_DAY if b is None else b.hour * 60 + b.minute)
        for a, b in hours
    )


def to_hours(minutes: Minutes) -> list[tuple[time, time | None]]:
    def at(m: int) -> time:
        return time(m // 60, m % 60)

    return [(at(a), None if b == _ALL_DAY else at(b)) for a, b in minutes if a < b]


def intersect(a: Minutes, b: Minutes) -> Minutes:
    """The common part of two sorted lists of minute intervals."""
    out: Minutes = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def restrict(
    rules: Rules, *, mask: Mapping[str, Hours] | None, min_buffer: timedelta | None
) -> Rules:
    """`rules` narrowed by a weekly `mask` (weekday -> hours; a missing weekday is closed)."""
    changes: dict[str, object] = {}
    if mask is not None:
        masks = {day: to_minutes(mask.get(day, ())) for day in WEEKDAYS}
        own = rules.weekly_hours
        weekly: dict[str, Sequence[tuple[time, time | None]]] = {}
        for day in WEEKDAYS:
            mine = [(0, _ALL_DAY)] if own is None else to_minutes(own.get(day, ()))
            weekly[day] = to_hours(intersect(mine, masks[day]))
        changes["weekly_hours"] = weekly
        changes["exceptions"] = {
            d: to_hours(intersect(to_minutes(h), masks[WEEKDAYS[d.weekday()]]))
            for d, h in rules.exceptions.items()
        }
    if min_buffer is not None:
        changes["buffer_before"] = max(rules.buffer_before, min_buffer)
        changes["buffer_after"] = max(rules.buffer_after, min_buffer)
    return dataclasses.replace(rules, **changes) if changes else rules  # type: ignore[arg-type]
