"""Combining resources' free starts: the first N starts at which any one (or every one) is free.

Pure. Each resource's free starts arrive as ascending runs of epoch seconds (`range`s on ordinary
days; see `domain.wallclock`). A search over a hundred resources lists tens of thousands of
(start, resource) pairs, so the combination works on whole runs, not on single starts:

- the starts of all resources usually lie on one lattice `t0 + k * g` (one zone and step, or
  zones whose offsets differ by whole steps). Then each resource's starts become one big integer
  with bit k set when it is free at `t0 + k * g`; a run is one arithmetic expression, however
  long. "any" is the OR of those, "all" their AND, and each start's list of free resources is
  made from whichever is smaller: the resources free then, or the few that are not;
- otherwise (starts not on a common lattice, or a lattice too fine to hold), a dictionary from
  start to resources, filled start by start.

In "any", no resource can contribute more than `limit` starts to the first `limit`, so no stream
is read further than that: the work is at most resources x limit, whatever the window.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from math import gcd
from typing import TypeVar

T = TypeVar("T")
Points = Sequence[int]  # ascending epoch seconds
Slots = list[tuple[int, list[T]]]  # (start, the resources free then, in the order given)

MAX_LATTICE_BITS = 32_000_000  # resources x lattice length: at most 4 MB of bits at once


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
    runs = [_first(chunks, limit) for chunks in per_resource]
    if len(runs) == 1:
        return [(t, everyone) for run in runs[0] for t in run]
    lattice = _lattice(runs)
    if lattice is None:
        return _by_dict(runs, everyone, limit)
    return _by_bits(runs, everyone, limit, *lattice)


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


def _lattice(runs: list[list[Points]]) -> tuple[int, int, int] | None:
    """(t0, g, length) such that every start is t0 + k * g with 0 <= k < length, if small."""
    firsts = [run[0] for resource in runs for run in resource]
    if not firsts:
        return None
    t0, last = min(firsts), max(run[-1] for resource in runs for run in resource)
    g = 0
    for resource in runs:
        for run in resource:
            g = gcd(g, run[0] - t0)
            if isinstance(run, range):
                if len(run) > 1:
                    g = gcd(g, run.step)
            else:
                for t in run:
                    g = gcd(g, t - t0)
    if g == 0:  # a single start
        g = 1
    length = (last - t0) // g + 1
    if length * len(runs) > MAX_LATTICE_BITS:
        return None
    return t0, g, length


def _bits(mask: int) -> list[int]:
    """The positions of the set bits, ascending."""
    text = bin(mask)[:1:-1]  # least significant first, without "0b"
    out = []
    k = text.find("1")
    while k >= 0:
        out.append(k)
        k = text.find("1", k + 1)
    return out


def _by_bits(
    runs: list[list[Points]], everyone: list[T], limit: int, t0: int, g: int, length: int
) -> Slots[T]:
    masks = []
    for resource in runs:
        mask = 0
        for run in resource:
            k0 = (run[0] - t0) // g
            if isinstance(run, range):
                n, stride = len(run), run.step // g if len(run) > 1 else 1
                if stride == 1:  # n bits in a row (the common case: no division)
                    mask |= ((1 << n) - 1) << k0
                else:  # n bits, `stride` apart: (2^(n*stride) - 1) / (2^stride - 1)
                    mask |= ((1 << (n * stride)) - 1) // ((1 << stride) - 1) << k0
            else:
                for t in run:
                    mask |= 1 << ((t - t0) // g)
        masks.append(mask)
    union = 0
    for mask in masks:
        union |= mask
    starts = _bits(union)[:limit]
    if not starts:
        return []
    union &= (1 << (starts[-1] + 1)) - 1
    free_pairs = sum((mask & union).bit_count() for mask in masks)
    if free_pairs * 2 <= len(starts) * len(masks):
        free_at: dict[int, list[T]] = {k: [] for k in starts}
        for name, mask in zip(everyone, masks, strict=True):
            for k in _bits(mask & union):
                free_at[k].append(name)
        return [(t0 + k * g, free_at[k]) for k in starts]
    # Most resources are free at most starts: cut the few that are not out of the full list.
    # Sweep the starts in order with the set of busy resources, which changes only at the edges
    # of each resource's busy runs (b ^ (b << 1): a bit where b changes), not at every busy start;
    # consecutive starts with the same busy set share one list.
    edges: dict[int, list[int]] = {}
    for i, mask in enumerate(masks):
        busy_bits = union & ~mask
        for k in _bits(busy_bits ^ (busy_bits << 1)):
            found = edges.get(k)
            if found is None:
                edges[k] = [i]
            else:
                found.append(i)
    at = sorted(edges)
    busy: set[int] = set()
    free: list[T] = everyone
    out: Slots[T] = []
    j = 0
    for k in starts:
        if j < len(at) and at[j] <= k:
            while j < len(at) and at[j] <= k:
                busy.symmetric_difference_update(edges[at[j]])  # each edge toggles
                j += 1
            free = _without(everyone, sorted(busy)) if busy else everyone
        out.append((t0 + k * g, free))
    return out


def _without(everyone: list[T], busy: list[int]) -> list[T]:
    """`everyone` without the positions in `busy` (ascending), by slices."""
    free: list[T] = []
    prev = 0
    for i in busy:
        free += everyone[prev:i]
        prev = i + 1
    free += everyone[prev:]
    return free


def _by_dict(runs: list[list[Points]], everyone: list[T], limit: int) -> Slots[T]:
    free_at: dict[int, list[T]] = {}
    for name, resource in zip(everyone, runs, strict=True):
        for run in resource:
            for t in run:
                found = free_at.get(t)
                if found is None:
                    free_at[t] = [name]
                else:
                    found.append(name)
    return [(t, free_at[t]) for t in sorted(free_at)[:limit]]


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
    """Membership in an ascending stream of runs, for ascending queries."""

    def __init__(self, chunks: Iterator[Points]) -> None:
        self._chunks = chunks
        self._run: Points = ()

    def has(self, t: int) -> bool:
        while not self._run or self._run[-1] < t:
            nxt = next(self._chunks, None)
            if nxt is None:
                return False
            self._run = nxt
        i = bisect_left(self._run, t)
        return i < len(self._run) and self._run[i] == t
