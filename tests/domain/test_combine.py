"""Combining resources' free starts, against plain set arithmetic on every start."""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from slotgraph.domain.combine import Points, free_dates, merged_slots


@st.composite
def stream(draw: st.DrawFn, unit: int) -> list[Points]:
    """Ascending runs: ranges (a step of whole units) and explicit points (a DST-change day)."""
    runs: list[Points] = []
    t = draw(st.integers(0, 50)) * unit
    for _ in range(draw(st.integers(0, 5))):
        t += draw(st.integers(1, 40)) * unit
        if draw(st.booleans()):
            step = draw(st.sampled_from([1, 2, 3, 4])) * unit
            n = draw(st.integers(1, 30))
            runs.append(range(t, t + n * step, step))
            t += (n - 1) * step
        else:
            points = [t]
            for _ in range(draw(st.integers(0, 5))):
                t += draw(st.integers(1, 7)) * unit
                points.append(t)
            runs.append(array("q", points))
    return runs


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[list[Points]], str, int]:
    # unit 1 with a huge offset between resources: no small lattice (the dictionary path)
    unit = draw(st.sampled_from([60, 900, 1]))
    streams = [draw(stream(unit)) for _ in range(draw(st.integers(1, 6)))]
    if unit == 1 and len(streams) > 1:
        streams[1] = [
            range(r.start + 10**9, r.stop + 10**9, r.step)
            if isinstance(r, range)
            else array("q", [t + 10**9 for t in r])
            for r in streams[1]
        ]
    return streams, draw(st.sampled_from(["any", "all"])), draw(st.integers(1, 60))


@settings(max_examples=400, deadline=None)
@given(case=cases())
def test_merged_slots_match_set_arithmetic(case: tuple[list[list[Points]], str, int]) -> None:
    streams, mode, limit = case
    names = [f"r{i}" for i in range(len(streams))]
    sets = [{t for run in s for t in run} for s in streams]
    starts = set().union(*sets) if mode == "any" else set.intersection(*sets)
    expected = [
        (t, [n for n, s in zip(names, sets, strict=True) if t in s]) for t in sorted(starts)
    ]
    # Each stream is read once, as a lazy reader would.
    got = merged_slots([iter(s) for s in streams], names, mode=mode, limit=limit)
    assert got == expected[:limit]


@st.composite
def mostly_free(draw: st.DrawFn) -> list[list[Points]]:
    """Resources free at most starts of one long grid, each with a few busy gaps: the case where
    each start's list is the full list with the busy ones cut out (swept at the gaps' edges)."""
    unit = draw(st.sampled_from([900, 60]))
    length = draw(st.integers(10, 120))
    streams: list[list[Points]] = []
    for _ in range(draw(st.integers(2, 12))):
        busy = sorted(draw(st.sets(st.integers(0, length - 1), max_size=length // 4)))
        runs: list[Points] = []
        k = 0
        for b in [*busy, length]:
            if b > k:
                runs.append(range(k * unit, b * unit, unit))
            k = b + 1
        streams.append(runs)
    return streams


@settings(max_examples=300, deadline=None)
@given(streams=mostly_free(), limit=st.integers(1, 150))
def test_mostly_free_resources_match_set_arithmetic(
    streams: list[list[Points]], limit: int
) -> None:
    names = [f"r{i}" for i in range(len(streams))]
    sets = [{t for run in s for t in run} for s in streams]
    expected = [
        (t, [n for n, s in zip(names, sets, strict=True) if t in s])
        for t in sorted(set().union(*sets))
    ]
    got = merged_slots([iter(s) for s in streams], names, mode="any", limit=limit)
    assert got == expected[:limit]


# A Sunday night before London's spring change (2026-03-29) and Lord Howe's half hour: the dates
# straddle clock changes; the units make streams span a few hours up to weeks.
_DATE_BASE = 1_774_641_600  # 2026-03-27T20:00:00Z


@st.composite
def date_cases(draw: st.DrawFn) -> tuple[list[list[Points]], str, str]:
    unit = draw(st.sampled_from([60, 900, 3600, 4 * 3600]))
    streams = [
        [
            range(r.start + _DATE_BASE, r.stop + _DATE_BASE, r.step)
            if isinstance(r, range)
            else array("q", [t + _DATE_BASE for t in r])
            for r in draw(stream(unit))
        ]
        for _ in range(draw(st.integers(1, 5)))
    ]
    zone = draw(
        st.sampled_from(["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe"])
    )
    return streams, zone, draw(st.sampled_from(["any", "all"]))


@settings(max_examples=400, deadline=None)
@given(case=date_cases())
def test_free_dates_match_the_local_date_of_every_start(
    case: tuple[list[list[Points]], str, str],
) -> None:
    """The day-skipping reads give the dates of the naive way: every start, its local date."""
    streams, zone, mode = case
    sets = [{t for run in s for t in run} for s in streams]
    starts = set().union(*sets) if mode == "any" else set.intersection(*sets)
    tz = ZoneInfo(zone)
    expected = sorted({datetime.fromtimestamp(t, tz).date() for t in starts})
    assert free_dates([iter(s) for s in streams], zone, mode=mode) == expected


def test_all_dates_skip_the_rest_of_a_found_date() -> None:
    """mode "all" seeks past a found date in every stream: 7 resources x 93 days x 1-minute
    starts (about 940,000 of them) are read a few times per day, not once per start."""
    days = [(_DATE_BASE + d * 86_400, _DATE_BASE + (d + 1) * 86_400) for d in range(93)]
    reads = 0

    class Counting(Sequence[int]):
        """A day's run that counts the starts read from it."""

        def __init__(self, run: range) -> None:
            self.run = run

        def __len__(self) -> int:
            return len(self.run)

        def __getitem__(self, i):  # type: ignore[no-untyped-def]
            nonlocal reads
            reads += 1
            return self.run[i]

    def runs() -> Iterator[Points]:
        for lo, hi in days:
            yield Counting(range(lo, hi, 60))

    got = free_dates([runs() for _ in range(7)], "UTC", mode="all")
    assert len(got) == 94  # 20:00 to 20:00 UTC: 93 days touch 94 dates
    assert reads < 7 * 94 * 40


def test_all_dates_after_a_23_hour_day() -> None:
    """London's 2026-03-29 lasts 23 hours: the next date starts at 23:00 UTC, not a day later."""
    lo = 1_774_742_400  # 2026-03-29T00:00:00Z, local midnight (the clock goes forward at 01:00)
    hi = 1_774_827_000  # 2026-03-29T23:30:00Z: 00:30 local on the 30th
    both = [[range(lo, hi, 60)], [range(lo, hi, 300)]]
    assert free_dates(both, "Europe/London", mode="all") == [
        date(2026, 3, 29),
        date(2026, 3, 30),
    ]
