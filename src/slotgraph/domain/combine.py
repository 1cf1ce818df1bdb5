"""Combining resources' free starts: the first N starts at which any one (or every one) is free.

Pure. Each resource's free starts arrive as ascending runs of epoch seconds (`range`s on ordinary
days; see `domain.wallclock`). A search over a hundred resources lists tens of thousands of
(start, resource) pairs, so the combination works on whole runs, not on single starts:

- "any": the starts of all resources lie on one lattice `t0 + k * g` (g the greatest common
  step; one zone and step gives the step itself). Each resource's runs become edges on it: a run
  of n consecutive lattice points is two (free from k, busy again from k + n), however long. The
  sweep over the edges keeps the set of free resources as one integer (a bit per resource), so
  the work follows the number of runs, and the starts between two edges share one list of names,
  made from whichever is smaller: the resources free then, or everyone with the few busy ones
  cut out;
- "all": the first resource's starts, each looked up in the others.

`free_dates` answers which local dates hold such a start, skipping the rest of a date once one is
found (in "all", every stream seeks past it), so its work follows the runs and the days.

In "any", no resource can contribute more than `limit` starts to the first `limit`, so no stream
is read further than that: the work is at most resources x limit, whatever the window.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from itertools import chain, compress, islice, pairwise
from math import gcd
from typing import TypeVar

from slotgraph.domain import wallclock as wc

T = TypeVar("T")
Points = Sequence[int]  # ascending epoch seconds
Slots = list[tuple[int, list[T]]]  # (start, the resources free then, in the order given)
_FLAG = bytes.maketrans(b"01", b"\x00\x01")


def merged_slots(
    per_resource: Sequence[Iterable[Points]], names: Sequence[T], *, mode: str, limit: int
) -> Slots[T]:
    """The first `limit` starts, each with the names of the resources free then (in order).

    `names[i]` names the resource of `per_resource[i]`. mode "any": starts where at least one
    resource is free; "all": where every one is.
    """
    if not per_resource:
        return []
    everyone = list(names)
    if mode == "all":
        return _common(per_resource, everyone, limit)
    if len(per_resource) == 1:  # its own first `limit` starts, read in C
        return [(t, everyone) for t in islice(chain.from_iterable(per_resource[0]), limit)]
    runs = [_first(chunks, limit) for chunks in per_resource]
    lattice = _lattice(runs)
    if lattice is None:
        return []
    return _by_edges(runs, everyone, limit, *lattice)


def _first(chunks: Iterable[Points], limit: int) -> list[Points]:
    """The runs holding a stream's first `limit` starts."""
    out: list[Points] = []
    left = limit
    for chunk in chunks:
        run = chunk if len(chunk) <= left else chunk[:left]
        if run:
            out.append(run)
            left -= len(run)
            if not left:
                break
    return out


def _lattice(runs: list[list[Points]]) -> tuple[int, int] | None:
    """(t0, g): every start is t0 + k * g (k >= 0), with g as large as that allows."""
    firsts = [run[0] for resource in runs for run in resource]
    if not firsts:
        return None
    t0 = min(firsts)
    steps = {run.step for resource in runs for run in resource if type(run) is range}
    listed = [t for resource in runs for run in resource if type(run) is not range for t in run]
    g = gcd(*[t - t0 for t in firsts], *steps, *[t - t0 for t in listed])
    return t0, g or 1  # g == 0: a single start


def _by_edges(runs: list[list[Points]], everyone: list[T], limit: int, t0: int, g: int) -> Slots[T]:
    """Sweep the lattice t0 + k * g with the set of free resources (bit i: resource i), which
    changes only at the edges of the resources' runs: a run of n consecutive lattice points
    from k makes its resource free at k and busy again at k + n (a toggle at each); any other run
    (a DST-change day's points, a coarser step) toggles at each of its points and the next
    lattice point. So the work follows the number of runs, not of (start, resource) pairs, and
    the starts between two edges share one list of names (everyone's, when all are free)."""
    edges: dict[int, int] = {}  # lattice index -> the resources that toggle there
    for i, resource in enumerate(runs):
        bit = 1 << i
        for run in resource:
            if type(run) is range and (run.step == g or len(run) == 1):
                k = (run.start - t0) // g
                edges[k] = edges.get(k, 0) ^ bit
                k += len(run)
                edges[k] = edges.get(k, 0) ^ bit
            else:
                for t in run:
                    k = (t - t0) // g
                    edges[k] = edges.get(k, 0) ^ bit
                    edges[k + 1] = edges.get(k + 1, 0) ^ bit
    at = sorted(edges)
    out: Slots[T] = []
    free = 0
    for k, stop in pairwise(at):
        free ^= edges[k]
        if free:
            names = _names(everyone, free)
            starts = range(t0 + k * g, t0 + stop * g, g)[: limit - len(out)]
            out += [(t, names) for t in starts]
            if len(out) == limit:
                return out
    return out


def _names(everyone: list[T], free: int) -> list[T]:
    """The names of the free resources (bit i: `everyone[i]`), in order."""
    if free == (1 << len(everyone)) - 1:
        return everyone
    flags = bin(free)[:1:-1].encode().translate(_FLAG)  # 0 or 1 per resource, bit 0 first
    return list(compress(everyone, flags))


def _common(per_resource: Sequence[Iterable[Points]], everyone: list[T], limit: int) -> Slots[T]:
    """Starts at which every resource is free: walk the first stream, look each start up in the
    others (each read lazily, never past the start looked for)."""
    others = [_Cursor(iter(chunks)) for chunks in per_resource[1:]]
    out: Slots[T] = []
    for chunk in per_resource[0]:
        for t in chunk:
            if all(c.has(t) for c in others):
                out.append((t, everyone))
                if len(out) == limit:
                    return out
    return out


class _Cursor:
    """Seeks in an ascending stream of runs, for ascending queries."""

    def __init__(self, chunks: Iterator[Points]) -> None:
        self._chunks = chunks
        self._run: Points = ()

    def seek(self, t: int) -> int | None:
        """The first start at or after `t` (None: the stream has no more)."""
        while not self._run or self._run[-1] < t:
            nxt = next(self._chunks, None)
            if nxt is None:
                return None
            self._run = nxt
        return self._run[bisect_left(self._run, t)]

    def has(self, t: int) -> bool:
        return self.seek(t) == t


def free_dates(per_resource: Sequence[Iterable[Points]], zone: str, *, mode: str) -> list[date]:
    """The local dates (in `zone`) holding a start at which any one (mode "any") or every one
    ("all") resource is free, ascending. Once a date is found, the rest of it is skipped."""
    if mode == "all" and len(per_resource) > 1:
        return _common_dates(per_resource, zone)
    found: set[date] = set()
    for chunks in per_resource:
        for run in chunks:
            i = 0
            while i < len(run):
                on = wc.local_date(zone, run[i])
                found.add(on)
                i = bisect_left(run, wc.day(zone, on).end, i)
    return sorted(found)


def _common_dates(per_resource: Sequence[Iterable[Points]], zone: str) -> list[date]:
    """Leapfrog: raise `t` to each stream's next start in turn until all agree on it (a common
    start), then jump to the next local midnight. Each seek is a bisection in a run, so a busy
    stretch or the rest of a found date costs one step, not one per start."""
    cursors = [_Cursor(iter(chunks)) for chunks in per_resource]
    found: list[date] = []
    t = cursors[0].seek(-(1 << 62))
    while t is not None:
        for c in cursors:
            at = c.seek(t)
            if at is None:
                return found
            if at != t:
                t = at
                break
        else:
            on = wc.local_date(zone, t)
            found.append(on)
            t = wc.day(zone, on).end
    return found
