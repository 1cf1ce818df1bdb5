"""`GET /v1/availability`'s answer written as JSON text straight from epoch seconds.

The bytes are exactly those orjson writes for `{"data": [FoundSlot, ...]}` with `OPT_UTC_Z`
(a hypothesis test compares the two over random zones, dates and slots, DST changes and historical
offsets included): a slot's times as local date-times in the search's `timezone`, its resource ids
as a list of text. Making two aware datetimes per slot and having orjson format them (it asks the
zone for each one's offset) was a third of a 300-slot search's CPU. Here a local day whose offset
does not change (`wallclock.Day.ordinary`) is written as its date and offset, taken from orjson's
own text of the day's midnight, around the clock time counted from that midnight; on a day whose
clock changes each time is a datetime written by orjson, as before. A day's text and bounds are
cached (`_day`, bounded like `wallclock.day`), and its times written in one comprehension: the
look-ups per day were a third of a 31-day answer's writing (docs/benchmarks.md, "availability's
fixed cost").
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import date, datetime
from functools import lru_cache
from itertools import chain, groupby, repeat
from typing import NamedTuple
from zoneinfo import ZoneInfo

import orjson

from slotgraph.domain import wallclock as wc
from slotgraph.services.availability import Found

_OPTIONS = orjson.OPT_UTC_Z
_HOURS_MINUTES = [f"{m // 60:02d}:{m % 60:02d}:" for m in range(24 * 60)]
_SECONDS = [f"{s:02d}" for s in range(60)]


def _text(at: datetime) -> str:
    return orjson.dumps(at, option=_OPTIONS).decode()[1:-1]


class _Day(NamedTuple):
    """A local day [start, end) in epoch seconds, and how its times are written: its
    "YYYY-MM-DDT" and offset ("Z", "+01:00") when its offset does not change, else None."""

    start: int
    end: int
    prefix: str | None
    suffix: str


@lru_cache(maxsize=wc.DAY_CACHE_ENTRIES)  # entries of ~330 bytes: about 1.4 MB at most
def _day(zone_name: str, on: date) -> _Day:
    today = wc.day(zone_name, on)
    if today.ordinary:
        midnight = _text(datetime.fromtimestamp(today.start, ZoneInfo(zone_name)))
        if midnight[10:19] == "T00:00:00":
            return _Day(today.start, today.end, midnight[:11], midnight[19:])
    return _Day(today.start, today.end, None, "")


def _texts(zone_name: str, times: list[int]) -> list[str]:
    """The text of each of the ascending epoch seconds `times` as a local date-time, a local
    day's times at once."""
    zone = ZoneInfo(zone_name)
    out: list[str] = []
    hours_minutes, seconds = _HOURS_MINUTES, _SECONDS
    i = 0
    while i < len(times):
        today = _day(zone_name, wc.local_date(zone_name, times[i]))
        j = max(bisect_left(times, today.end, i), i + 1)
        prefix, suffix, start = today.prefix, today.suffix, today.start
        if prefix is None:
            out += [_text(datetime.fromtimestamp(at, zone)) for at in times[i:j]]
        else:
            out += [
                f"{prefix}{hours_minutes[(at - start) // 60]}{seconds[(at - start) % 60]}{suffix}"
                for at in times[i:j]
            ]
        i = j
    return out


def _heads(zone_name: str, starts: list[int], length: int) -> list[str]:
    """Each slot's JSON up to its ids, `{"start_time":"...","end_time":"...","resource_ids":`,
    for the ascending `starts` of slots lasting `length` seconds. On an ordinary local day a
    slot that ends on it too is written from the day's text in one go (both times at once);
    the others, as `_texts` writes them."""
    out: list[str] = []
    hours_minutes, seconds = _HOURS_MINUTES, _SECONDS
    i, n = 0, len(starts)
    while i < n:
        today = _day(zone_name, wc.local_date(zone_name, starts[i]))
        j = max(bisect_left(starts, today.end, i), i + 1)
        k = i  # starts[i:k] end before the day does
        prefix, suffix, start = today.prefix, today.suffix, today.start
        if prefix is not None:
            k = max(bisect_left(starts, today.end - length, i, j), i)
            out += [
                f'{{"start_time":"{prefix}{hours_minutes[d // 60]}{seconds[d % 60]}{suffix}",'
                f'"end_time":"{prefix}{hours_minutes[e // 60]}{seconds[e % 60]}{suffix}",'
                '"resource_ids":'
                for at in starts[i:k]
                for d, e in ((at - start, at - start + length),)
            ]
        if k < j:
            rest = starts[k:j]
            out += [
                f'{{"start_time":"{a}","end_time":"{b}","resource_ids":'
                for a, b in zip(
                    _texts(zone_name, rest),
                    _texts(zone_name, [at + length for at in rest]),
                    strict=True,
                )
            ]
        i = j
    return out


def render(found: Found) -> bytes:
    """`{"data": [slot, ...]}`: each slot's start and end in `found.timezone`, and its ids.

    Made as bytes and joined once: an answer may be megabytes of ids, and each further copy of
    it (a str of the slots, wrapped, then encoded) cost more than writing the ids. Consecutive
    slots that share one list of ids (all of them, for one resource) are written together: the
    slots' own texts encoded at once, each list's JSON once, interleaved without a copy."""
    if not found.slots:
        return b'{"data":[]}'
    first = found.slots[0][1]
    if len(first) <= 1 and all([ids is first for _, ids in found.slots]):
        # One list of at most one id for every slot (a search over one resource): its JSON
        # between the slots' own texts, in one text encoded once (0.21 -> 0.15 ms for 341
        # slots). A longer list repeated (many's) stays bytes, copied once.
        between = orjson.dumps(first).decode() + "},"
        own = _heads(found.timezone, [at for at, _ in found.slots], found.length)
        return f'{{"data":[{between.join(own)}{between[:-1]}]}}'.encode()
    heads = "\n".join(_heads(found.timezone, [at for at, _ in found.slots], found.length))
    each = heads.encode().split(b"\n")  # no text of a time holds a line break
    listed: dict[int, bytes] = {}  # id of a list of ids -> its JSON and the slot's end
    parts = [b'{"data":[']
    k = 0
    for key, group in groupby([ids for _, ids in found.slots], key=id):
        members = list(group)
        ids, count = members[0], len(members)
        tail = listed.get(key)
        if tail is None:
            tail = listed[key] = orjson.dumps(ids) + b"},"
        parts += chain.from_iterable(zip(each[k : k + count], repeat(tail)))
        k += count
    parts[-1] = parts[-1][:-1] + b"]}"
    return b"".join(parts)
