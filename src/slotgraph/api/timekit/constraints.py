"""Timekit's availability constraints, translated onto slotgraph's rules.

The weekly ones (`allow_/block_` + `day_and_time`, `hours`, `day`, `weekdays`, `weekends`) become
local hours per weekday, in each resource's own zone: on a resource they become its
`weekly_hours`; in a query they narrow every resource's hours for that query only. The absolute
ones (`allow_period`, `block_period`) become spans of time that are taken for the query.

How they combine (Timekit: "allowing constraints implicitly block everything else"): allowing
constraints of one family add up (Monday and Tuesday), different families narrow each other
(weekdays, 9 to 17), and blocking constraints are taken away last.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from slotgraph.api.timekit import times
from slotgraph.domain import overlay
from slotgraph.domain.availability import WEEKDAYS, Hours
from slotgraph.errors import ValidationFailed

_ALL_DAY = [(0, 24 * 60)]
_DAY_NAMES = {
    **{d: d for d in WEEKDAYS},
    **{
        full: short
        for full, short in zip(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
            WEEKDAYS,
            strict=True,
        )
    },
}
_WEEKDAYS, _WEEKENDS = WEEKDAYS[:5], WEEKDAYS[5:]
# name -> (family, the parameters it takes). A family's allowing constraints add up.
CATALOGUE: dict[str, tuple[str, tuple[str, ...]]] = {
    "allow_day_and_time": ("day_and_time", ("day", "start", "end")),
    "block_day_and_time": ("day_and_time", ("day", "start", "end")),
    "allow_hours": ("hours", ("start", "end")),
    "block_hours": ("hours", ("start", "end")),
    "allow_day": ("day", ("day",)),
    "block_day": ("day", ("day",)),
    "allow_weekdays": ("day", ()),
    "block_weekdays": ("day", ()),
    "allow_weekends": ("day", ()),
    "block_weekends": ("day", ()),
    "allow_period": ("period", ("start", "end")),
    "block_period": ("period", ("start", "end")),
}
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")
MAX_CONSTRAINTS = 500


@dataclass(frozen=True)
class Translated:
    mask: dict[str, Hours] | None  # None: no weekly constraint was given
    allowed: list[tuple[datetime, datetime]] | None  # None: no allow_period was given
    blocked: list[tuple[datetime, datetime]]


def _minute(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise ValidationFailed.one(field, "an hour from 0 to 24, or HH:MM")
    if isinstance(value, int | float):
        minutes = round(value * 60)
    elif isinstance(value, str) and (m := _HHMM.match(value.strip())):
        minutes = int(m.group(1)) * 60 + int(m.group(2))
    else:
        raise ValidationFailed.one(field, "an hour from 0 to 24, or HH:MM")
    if not 0 <= minutes <= 24 * 60:
        raise ValidationFailed.one(field, "an hour from 0 to 24")
    return minutes


def _day(value: Any, field: str) -> str:
    day = _DAY_NAMES.get(str(value).strip().lower())
    if day is None:
        raise ValidationFailed.one(field, f"{value!r} is not a day of the week")
    return day


def _span(params: dict[str, Any], field: str) -> tuple[int, int]:
    found: dict[str, int] = {}
    errors: list[tuple[str, str]] = []
    for part in ("start", "end"):  # both wrong: both named
        try:
            found[part] = _minute(params.get(part), f"{field}.{part}")
        except ValidationFailed as exc:
            errors += exc.errors
    if errors:
        raise ValidationFailed(errors)
    start, end = found["start"], found["end"]
    if end <= start:
        raise ValidationFailed.one(f"{field}.end", "must be after start")
    return start, end


def _days(name: str, params: dict[str, Any], field: str) -> tuple[str, ...]:
    if name.endswith("_weekdays"):
        return _WEEKDAYS
    if name.endswith("_weekends"):
        return _WEEKENDS
    return (_day(params.get("day"), f"{field}.day"),)


@dataclass
class _Rules:
    """What the constraints read so far add up to (translate's working state)."""

    allow: dict[str, dict[str, list[tuple[int, int]]]]  # family -> day -> minutes
    block: dict[str, list[tuple[int, int]]]
    allowed: list[tuple[datetime, datetime]] | None
    blocked: list[tuple[datetime, datetime]]


def translate(
    constraints: Sequence[Any] | None, *, field: str, now: datetime, periods: bool = True
) -> Translated:
    """Timekit's list of `{name: {params}}` objects, checked and translated. Every wrong
    constraint is named in one 422, as /v1 names every wrong rule, not the first alone."""
    rules = _Rules({}, {d: [] for d in WEEKDAYS}, None, [])
    items = list(constraints or [])
    if len(items) > MAX_CONSTRAINTS:
        raise ValidationFailed.one(field, f"at most {MAX_CONSTRAINTS} constraints")
    errors: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        try:
            _take(rules, item, f"{field}.{i}", now=now, periods=periods)
        except ValidationFailed as exc:
            errors += exc.errors
    if errors:
        raise ValidationFailed(errors)
    allow, block, allowed, blocked = rules.allow, rules.block, rules.allowed, rules.blocked
    mask: dict[str, Hours] | None = None
    if allow or any(block.values()):
        mask = {}
        for day in WEEKDAYS:
            minutes = _ALL_DAY
            for per_day in allow.values():
                minutes = overlay.intersect(minutes, _union(per_day.get(day, [])))
            mask[day] = overlay.to_hours(_minus(minutes, _union(block[day])))
    return Translated(mask, allowed, blocked)


def _take(rules: _Rules, item: Any, at: str, *, now: datetime, periods: bool) -> None:
    """One constraint (`at` its path) added to `rules`, or a 422 naming what is wrong with it."""
    if not isinstance(item, dict) or len(item) != 1:
        raise ValidationFailed.one(at, 'one constraint per object: {"allow_hours": {...}}')
    ((name, params),) = item.items()
    if name not in CATALOGUE:
        raise ValidationFailed.one(
            at, f"unknown constraint {name!r}; one of: {', '.join(CATALOGUE)}"
        )
    family, wanted = CATALOGUE[name]
    params = params or {}
    if not isinstance(params, dict) or set(params) - set(wanted):
        raise ValidationFailed.one(f"{at}.{name}", f"takes {', '.join(wanted) or 'nothing'}")
    if family == "period":
        if not periods:
            raise ValidationFailed.one(
                f"{at}.{name}", "periods are not kept on a resource; use /v1 blocks"
            )
        lo, hi = times.each(  # (a start and an end both wrong: two errors)
            lambda: times.instant(params.get("start"), f"{at}.{name}.start", now=now),
            lambda: times.instant(params.get("end"), f"{at}.{name}.end", now=now),
        )
        if hi <= lo:
            raise ValidationFailed.one(f"{at}.{name}.end", "must be after start")
        if name.startswith("allow"):
            rules.allowed = [*(rules.allowed or []), (lo, hi)]
        else:
            rules.blocked.append((lo, hi))
        return
    span, errors = (0, 24 * 60), []
    days: tuple[str, ...] = WEEKDAYS
    try:
        if "start" in wanted:
            span = _span(params, f"{at}.{name}")
    except ValidationFailed as exc:
        errors += exc.errors
    try:
        if family != "hours":
            days = _days(name, params, f"{at}.{name}")
    except ValidationFailed as exc:
        errors += exc.errors
    if errors:  # its hours and its day both wrong: both named
        raise ValidationFailed(errors)
    for day in days:
        if name.startswith("allow"):
            rules.allow.setdefault(family, {}).setdefault(day, []).append(span)
        else:
            rules.block[day].append(span)


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def _minus(spans: list[tuple[int, int]], cut: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for lo, hi in spans:
        cur = lo
        for a, b in cut:
            if b <= cur or a >= hi:
                continue
            if a > cur:
                out.append((cur, a))
            cur = max(cur, b)
        if cur < hi:
            out.append((cur, hi))
    return out


def outside(
    allowed: list[tuple[datetime, datetime]], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The parts of [start, end) that no allowed period covers: taken, for the query."""
    out, cur = [], start
    for lo, hi in sorted(allowed):
        if lo > cur:
            out.append((cur, min(lo, end)))
        cur = max(cur, hi)
        if cur >= end:
            break
    if cur < end:
        out.append((cur, end))
    return [(a, b) for a, b in out if a < b]


def weekly_hours(mask: dict[str, Hours]) -> dict[str, list[list[str]]]:
    """A mask as a resource's `weekly_hours` (["HH:MM", "HH:MM"] pairs; 24:00 ends a day)."""

    def hhmm(t: time | None) -> str:
        return "24:00" if t is None else t.strftime("%H:%M")

    return {day: [[hhmm(a), hhmm(b)] for a, b in hours] for day, hours in mask.items() if hours}


def from_weekly_hours(weekly: dict[str, list[list[str]]] | None) -> list[dict[str, Any]]:
    """A resource's weekly hours as Timekit `allow_day_and_time` constraints (none: open)."""
    if weekly is None:
        return []
    full = dict(
        zip(
            WEEKDAYS,
            ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
            strict=True,
        )
    )
    out: list[dict[str, Any]] = []
    for day in WEEKDAYS:
        for a, b in weekly.get(day, []):
            out.append({"allow_day_and_time": {"day": full[day], "start": a, "end": b}})
    if not out:
        out.append({"block_weekdays": {}})
        out.append({"block_weekends": {}})
    return out
