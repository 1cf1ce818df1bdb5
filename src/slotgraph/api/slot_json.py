"""`GET /v1/availability`'s answer written as JSON text straight from epoch seconds.

The bytes are exactly those orjson writes for `{"data": [FoundSlot, ...]}` with `OPT_UTC_Z`
(a hypothesis test compares the two over random zones, dates and slots, DST changes and historical
offsets included): a slot's times as local date-times in the search's `timezone`, its resource ids
as a list of text. Making two aware datetimes per slot and having orjson format them (it asks the
zone for each one's offset) was a third of a 300-slot search's CPU. Here a local day whose offset
does not change (`wallclock.Day.ordinary`) is written as its date and offset, taken from orjson's
own text of the day's midnight, around the clock time counted from that midnight; on a day whose
clock changes each time is a datetime written by orjson, as before.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import orjson

from slotgraph.domain import wallclock as wc
from slotgraph.services.availability import Found

_OPTIONS = orjson.OPT_UTC_Z
_HOURS_MINUTES = [f"{m // 60:02d}:{m % 60:02d}:" for m in range(24 * 60)]
_SECONDS = [f"{s:02d}" for s in range(60)]
_HEAD = '{{"start_time":"{}","end_time":"{}","resource_ids":'


def _text(at: datetime) -> str:
    return orjson.dumps(at, option=_OPTIONS).decode()[1:-1]


def _texts(zone_name: str, times: list[int]) -> list[str]:
    """The text of each of the ascending epoch seconds `times` as a local date-time."""
    zone = ZoneInfo(zone_name)
    out = []
    start = end = 0  # the local day of the last time, [start, end)
    prefix: str | None = None  # its "YYYY-MM-DDT" when its offset does not change
    suffix = ""  # its offset as orjson writes it: "Z", "+01:00"
    for at in times:
        if not start <= at < end:
            today = wc.day(zone_name, wc.local_date(zone_name, at))
            start, end, prefix = today.start, today.end, None
            if today.ordinary:
                midnight = _text(datetime.fromtimestamp(start, zone))
                if midnight[10:19] == "T00:00:00":
                    prefix, suffix = midnight[:11], midnight[19:]
        if prefix is None:
            out.append(_text(datetime.fromtimestamp(at, zone)))
        else:
            since = at - start
            out.append(f"{prefix}{_HOURS_MINUTES[since // 60]}{_SECONDS[since % 60]}{suffix}")
    return out


def render(found: Found) -> bytes:
    """`{"data": [slot, ...]}`: each slot's start and end in `found.timezone`, and its ids.

    Made as bytes and joined once: an answer may be megabytes of ids, and each further copy of
    it (a str of the slots, wrapped, then encoded) cost more than writing the ids."""
    if not found.slots:
        return b'{"data":[]}'
    starts = [at for at, _ in found.slots]
    ends = [at + found.length for at in starts]
    listed: dict[int, bytes] = {}  # id of a list of ids -> its JSON (slots may share one list)
    parts = [b'{"data":[']
    for (_, ids), a, b in zip(
        found.slots, _texts(found.timezone, starts), _texts(found.timezone, ends), strict=True
    ):
        text = listed.get(id(ids))
        if text is None:
            text = listed[id(ids)] = orjson.dumps(ids)
        parts += (_HEAD.format(a, b).encode(), text, b"},")
    parts[-1] = b"}]}"
    return b"".join(parts)
