"""Combining resources' free starts, against plain set arithmetic on every start."""

from __future__ import annotations

from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from slotgraph.domain.combine import Points, merged_slots


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
