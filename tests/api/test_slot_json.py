"""api/slot_json.py writes a search's answer byte for byte as orjson writes it from datetimes
(what the route answered before): random zones, dates from 1900 to 2200 (historical offsets of
seconds, DST changes, slots across midnight and across a change), shared and distinct id lists."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from slotgraph.api.slot_json import render
from slotgraph.services.availability import Found

EARLIEST, LATEST = -2208988800, 7258118400  # 1900-01-01 and 2200-01-01, UTC
ZONES = sorted(zoneinfo.available_timezones())
IDS = [f"01a22acf-ce6a-7b43-98c2-f6235b66f9{i:02d}" for i in range(20)]


@dataclass
class Expected:  # the shape the route rendered with orjson: start_time, end_time, resource_ids
    start_time: datetime
    end_time: datetime
    resource_ids: list[str]


def by_orjson(found: Found) -> bytes:
    zone = zoneinfo.ZoneInfo(found.timezone)
    data = [
        Expected(
            datetime.fromtimestamp(at, zone), datetime.fromtimestamp(at + found.length, zone), ids
        )
        for at, ids in found.slots
    ]
    return orjson.dumps({"data": data}, option=orjson.OPT_UTC_Z)


@st.composite
def answers(draw: st.DrawFn) -> Found:
    zone = draw(st.sampled_from(["UTC", "Europe/Oslo", "America/St_Johns", *ZONES]))
    at = draw(st.integers(EARLIEST, LATEST - 400 * 86400))
    step = draw(st.sampled_from([1, 60, 900, 1800, 3600, 86400, 7 * 3600 + 13]))
    shared = draw(st.lists(st.sampled_from(IDS), max_size=5))
    alone = draw(st.booleans())  # one list for every slot (as one resource's search makes)
    if alone:
        shared = shared[:1]
    slots = []
    for _ in range(draw(st.integers(0, 60))):
        at += step * draw(st.integers(1, 400))
        ids = (
            shared
            if alone or draw(st.booleans())
            else draw(st.lists(st.sampled_from(IDS), max_size=4))
        )
        slots.append((at, ids))
    length = draw(st.sampled_from([1, 900, 1800, 3600, 5400, 86400, 31 * 86400]))
    return Found(slots, length, zone)


@settings(max_examples=600, deadline=None)
@given(found=answers())
def test_the_answer_is_what_orjson_writes(found: Found) -> None:
    assert render(found) == by_orjson(found)


def test_the_days_around_each_clock_change() -> None:
    """Every quarter-hour of three days around the 2031 changes in Oslo and in Lord Howe (a
    half-hour change), and of 1900-01-01 in Amsterdam (+00:19:32)."""
    for zone, first in (
        ("Europe/Oslo", "2031-03-29"),
        ("Europe/Oslo", "2031-10-25"),
        ("Australia/Lord_Howe", "2031-04-05"),
        ("Australia/Lord_Howe", "2031-10-04"),
        ("Europe/Amsterdam", "1900-01-01"),
    ):
        t0 = int(datetime.fromisoformat(f"{first}T00:00:00+00:00").timestamp())
        for ids in (IDS[:2], IDS[:1], []):  # one list for every slot: one resource's search
            shared = [(t0 + k * 900, ids) for k in range(3 * 96)]
            apart = [(t0 + k * 900, list(ids)) for k in range(3 * 96)]
            for slots in (shared, apart):
                for length in (900, 3 * 3600):
                    found = Found(slots, length, zone)
                    assert render(found) == by_orjson(found)
