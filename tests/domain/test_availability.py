"""Availability math: hypothesis against a minute-by-minute oracle, and DST cases by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slotgraph.domain.availability import (
    WEEKDAYS,
    OutsideAvailability,
    Rules,
    TooSoon,
    check_booking,
    free_starts,
    grid,
    opening,
    slot_points,
    slots_in,
)
from slotgraph.domain.combine import merged_slots
from slotgraph.domain.wallclock import instant

DAY0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
M = timedelta(minutes=1)


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


five = st.integers(0, 24 * 12).map(
    lambda k: time(0) if k == 0 else None if k == 288 else time(k * 5 // 60, k * 5 % 60)
)


@st.composite
def hours(draw: st.DrawFn) -> list[tuple[time, time | None]]:
    out = []
    for _ in range(draw(st.integers(0, 3))):
        # Often in the small hours, where the clocks change: boundaries in a gap or a fold.
        a = draw(st.integers(0, 287) | st.integers(0, 48))
        b = draw(st.integers(a + 1, 288) | st.integers(a + 1, min(a + 24, 288)))
        out.append(
            (time(a * 5 // 60, a * 5 % 60), None if b == 288 else time(b * 5 // 60, b * 5 % 60))
        )
    return out


# (zone, the UTC midnight before a local day worth testing): ordinary days, and the DST changes
# of three zones, the autumn fold (a wall time that happens twice) and the spring gap.
DAYS = [
    ("UTC", DAY0),
    ("Asia/Kolkata", DAY0),
    ("Europe/Oslo", datetime(2026, 10, 24, tzinfo=UTC)),  # fold: 02:00-03:00 twice on the 25th
    ("Europe/Oslo", datetime(2026, 3, 28, tzinfo=UTC)),  # gap: 02:00-03:00 missing on the 29th
    ("America/New_York", datetime(2026, 10, 31, tzinfo=UTC)),  # fold: 01:00-02:00 on Nov 1st
    ("America/New_York", datetime(2026, 3, 7, tzinfo=UTC)),  # gap: 02:00-03:00 on the 8th
    ("Australia/Lord_Howe", datetime(2026, 4, 4, tzinfo=UTC)),  # fold: 01:30-02:00 on the 5th
    ("Australia/Lord_Howe", datetime(2026, 10, 3, tzinfo=UTC)),  # gap: 02:00-02:30 on the 4th
]


@st.composite
def cases(
    draw: st.DrawFn,
) -> tuple[Rules, list[tuple[datetime, datetime]], timedelta, datetime, datetime]:
    zone, day0 = draw(st.sampled_from(DAYS))
    weekly = None if draw(st.booleans()) else {d: draw(hours()) for d in WEEKDAYS}
    exceptions = {}
    if draw(st.booleans()):
        exceptions[(day0 + timedelta(days=1)).date()] = draw(hours())
    rules = Rules(
        timezone=zone,
        weekly_hours=weekly,
        exceptions=exceptions,
        buffer_before=minutes(draw(st.sampled_from([0, 5, 15]))),
        buffer_after=minutes(draw(st.sampled_from([0, 10, 30]))),
        min_notice=draw(st.sampled_from([None, minutes(0), minutes(60), minutes(600)])),
        max_advance=draw(st.sampled_from([None, minutes(24 * 60)])),
        min_duration=draw(st.sampled_from([None, minutes(30)])),
        max_duration=draw(st.sampled_from([None, minutes(90)])),
        slot_step=minutes(draw(st.sampled_from([5, 15, 30, 60]))),
    )
    busy = []
    for _ in range(draw(st.integers(0, 6))):
        s = day0 + minutes(5 * draw(st.integers(0, 2 * 288)))
        busy.append((s, s + minutes(5 * draw(st.integers(1, 36)))))
    duration = minutes(5 * draw(st.integers(1, 30)))
    now = day0 + minutes(5 * draw(st.integers(-50, 100)))
    return rules, busy, duration, now, day0


def oracle(
    rules: Rules,
    busy: list[tuple[datetime, datetime]],
    d: timedelta,
    now: datetime,
    window: tuple[datetime, datetime],
) -> list[datetime]:
    """Every 5 minutes of real time in the window, each rule checked on its own.

    Opening hours by their definition in docs/availability.md: a boundary is the first instant of
    its local day whose wall-clock reading has reached it (so a boundary in a DST gap is where the
    gap ends, and one in the autumn fold is its first occurrence); 24:00 is the next local day's
    first instant. A start is on the grid when its wall-clock reading is, whichever fold it is in.
    """
    zone = ZoneInfo(rules.timezone)
    readings: dict[date, list[tuple[datetime, time]]] = {}  # local day -> (instant, wall time)
    m = window[0] - timedelta(days=2)
    while m < window[1] + timedelta(days=2):
        local = m.astimezone(zone)
        readings.setdefault(local.date(), []).append((m, local.time()))
        m += minutes(5)

    def boundary(day: date, at: time | None) -> datetime:
        if at is not None:
            for instant, wall in readings[day]:
                if wall >= at:
                    return instant
        return readings[day + timedelta(days=1)][0][0]

    spans = [
        (boundary(day, a), boundary(day, b))
        for day in list(readings)[1:-1]
        for a, b in rules.hours_on(day)
    ]

    def open_at(m: datetime) -> bool:
        return any(lo <= m < hi for lo, hi in spans)

    def busy_at(m: datetime) -> bool:
        return any(x <= m < y for x, y in busy)

    if (rules.min_duration and d < rules.min_duration) or (
        rules.max_duration and d > rules.max_duration
    ):
        return []
    out = []
    s = window[0]
    while s < window[1]:
        local = s.astimezone(zone)
        since_midnight = local - local.replace(hour=0, minute=0)
        ok = (
            since_midnight % rules.slot_step == timedelta(0)
            and s + d <= window[1]
            and (rules.min_notice is None or s >= now + rules.min_notice)
            and (rules.max_advance is None or s <= now + rules.max_advance)
            and all(open_at(s + k * M) for k in range(int(d / M)))
            and not any(
                busy_at(s - rules.buffer_before + k * M)
                for k in range(int((d + rules.buffer_before + rules.buffer_after) / M))
            )
        )
        if ok:
            out.append(s)
        s += minutes(5)
    return out


@pytest.mark.slow  # 200 examples against a minute-by-minute oracle
@settings(max_examples=200, deadline=None)
@given(case=cases())
def test_free_slots_match_the_minute_by_minute_oracle(
    case: tuple[Rules, list[tuple[datetime, datetime]], timedelta, datetime, datetime],
) -> None:
    rules, busy, d, now, day0 = case
    window = (day0, day0 + timedelta(days=2))
    # Busy spans are holds: they already include the buffers of the booking that made them.
    starts = free_starts(rules, window=window, duration=d, busy=busy, now=now)
    got = [instant(t) for run in slot_points(rules, starts) for t in run]
    assert got == oracle(rules, busy, d, now, window)
    assert got == list(slots_in(starts, grid(rules, *window)))
    for s in got:  # and every slot passes the single-booking check
        check_booking(rules, start=s, end=s + d, now=now)


def test_merged_slots_any_and_all() -> None:
    t = [1_000_000 + 900 * k for k in range(5)]
    streams = [[[t[0], t[1]], [t[3]]], [range(t[1], t[3] + 1, 900), [t[4]]]]
    assert merged_slots(streams, [0, 1], mode="any", limit=10) == [
        (t[0], [0]),
        (t[1], [0, 1]),
        (t[2], [1]),
        (t[3], [0, 1]),
        (t[4], [1]),
    ]
    assert merged_slots(streams, [0, 1], mode="any", limit=2) == [(t[0], [0]), (t[1], [0, 1])]
    assert merged_slots(streams, [0, 1], mode="all", limit=10) == [(t[1], [0, 1]), (t[3], [0, 1])]
    assert merged_slots(streams, [0, 1], mode="all", limit=1) == [(t[1], [0, 1])]
    assert merged_slots([], [], mode="any", limit=5) == []


# -- DST, by hand --------------------------------------------------------------------------------


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_oslo_spring_forward_keeps_wall_clock_hours() -> None:
    # 2026-03-29: 02:00 CET -> 03:00 CEST. Hours 09:00-17:00 local, before and after the change.
    rules = Rules("Europe/Oslo", weekly_hours={d: [(time(9), time(17))] for d in WEEKDAYS})
    spans = opening(rules, utc(2026, 3, 28), utc(2026, 3, 30))
    assert spans == [
        (utc(2026, 3, 28, 8), utc(2026, 3, 28, 16)),
        (utc(2026, 3, 29, 7), utc(2026, 3, 29, 15)),
    ]
    # Afternoon hours on the change day are still local afternoon.
    late = Rules("Europe/Oslo", weekly_hours={"sun": [(time(13), time(18))]})
    assert opening(late, utc(2026, 3, 29), utc(2026, 3, 30)) == [
        (utc(2026, 3, 29, 11), utc(2026, 3, 29, 16))
    ]


def test_nonexistent_local_times_are_skipped() -> None:
    rules = Rules("Europe/Oslo", weekly_hours={"sun": [(time(1), time(4))]}, slot_step=minutes(30))
    points = [
        p.astimezone(ZoneInfo("Europe/Oslo")).strftime("%H:%M")
        for p in grid(rules, utc(2026, 3, 29, 0), utc(2026, 3, 29, 3))
    ]
    assert points == ["01:00", "01:30", "03:00", "03:30", "04:00", "04:30"]  # to 05:00 CEST
    # Opening hours 02:30-04:00 start where the gap ends (03:00 CEST = 01:00 UTC).
    gap = Rules("Europe/Oslo", weekly_hours={"sun": [(time(2, 30), time(4))]})
    assert opening(gap, utc(2026, 3, 29), utc(2026, 3, 30)) == [
        (utc(2026, 3, 29, 1), utc(2026, 3, 29, 2))
    ]


def test_new_york_fall_back_offers_both_occurrences() -> None:
    # 2026-11-01: 02:00 EDT -> 01:00 EST; 01:00-02:00 happens twice. Both 01:00 are starts.
    ny = ZoneInfo("America/New_York")
    rules = Rules(
        "America/New_York", weekly_hours={"sun": [(time(0), time(3))]}, slot_step=minutes(60)
    )
    points = list(grid(rules, utc(2026, 11, 1, 4), utc(2026, 11, 2, 0)))  # from local 00:00
    assert [p.astimezone(ny).strftime("%H:%M %Z") for p in points][:5] == [
        "00:00 EDT",
        "01:00 EDT",
        "01:00 EST",
        "02:00 EST",
        "03:00 EST",
    ]
    check_booking(rules, start=utc(2026, 11, 1, 6), end=utc(2026, 11, 1, 7), now=utc(2026, 10, 1))
    # An opening boundary in the fold means its first occurrence: 01:30 EDT.
    late = Rules("America/New_York", weekly_hours={"sun": [(time(1, 30), time(3))]})
    assert opening(late, utc(2026, 11, 1), utc(2026, 11, 2)) == [
        (utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 8))
    ]
    # Opening 00:00-03:00 local lasts four real hours that day.
    assert opening(rules, utc(2026, 11, 1), utc(2026, 11, 2)) == [
        (utc(2026, 11, 1, 4), utc(2026, 11, 1, 8))
    ]
    # An afternoon booking on the change day is at the local afternoon.
    afternoon = Rules("America/New_York", weekly_hours={"sun": [(time(13), time(17))]})
    check_booking(
        afternoon, start=utc(2026, 11, 1, 18), end=utc(2026, 11, 1, 19), now=utc(2026, 10, 1)
    )
    with pytest.raises(OutsideAvailability):
        check_booking(
            afternoon, start=utc(2026, 11, 1, 17), end=utc(2026, 11, 1, 18), now=utc(2026, 10, 1)
        )


def test_lord_howe_half_hour_shift() -> None:
    # 2026-10-04: 02:00 -> 02:30 (+10:30 -> +11:00). 02:00 and 02:15 do not exist.
    lh = ZoneInfo("Australia/Lord_Howe")
    rules = Rules("Australia/Lord_Howe", weekly_hours={"sun": [(time(1), time(4))]})
    points = [
        p.astimezone(lh).strftime("%H:%M")
        for p in grid(rules, utc(2026, 10, 3, 14, 30), utc(2026, 10, 3, 16))
    ]
    assert points == ["01:00", "01:15", "01:30", "01:45", "02:30", "02:45"]  # to 03:00 +11
    spans = opening(rules, utc(2026, 10, 3), utc(2026, 10, 5))
    assert spans == [(utc(2026, 10, 3, 14, 30), utc(2026, 10, 3, 17))]  # 2.5 real hours
    # 13:00-17:00 on the change day is 13:00 +11:00.
    pm = Rules("Australia/Lord_Howe", weekly_hours={"sun": [(time(13), time(17))]})
    assert opening(pm, utc(2026, 10, 3), utc(2026, 10, 5)) == [
        (utc(2026, 10, 4, 2), utc(2026, 10, 4, 6))
    ]


def test_rule_errors() -> None:
    rules = Rules("UTC", weekly_hours={"mon": [(time(9), time(17))]}, min_notice=minutes(60))
    with pytest.raises(TooSoon):
        check_booking(
            rules,
            start=DAY0 + minutes(9 * 60),
            end=DAY0 + minutes(600),
            now=DAY0 + minutes(8 * 60 + 1),
        )
    with pytest.raises(OutsideAvailability):
        check_booking(rules, start=DAY0 + minutes(9 * 60 + 5), end=DAY0 + minutes(600), now=DAY0)
