"""The garbage collector, tuned for a long-running process once its start-up is done."""

from __future__ import annotations

import gc

# The collector's youngest generation is collected after this many more container objects were
# made than freed (CPython's default: 700). A search for 100 resources holds some 10,000 at its
# peak, so at 700 it ran 3.7 young collections per request, each walking the answer's lists of
# ids again (0.17-0.65 ms a request); at 10,000, none (docs/benchmarks.md, "availability's
# fixed cost").
YOUNG_GENERATION_THRESHOLD = 10_000


def settle_the_heap() -> None:
    """End a process's start-up as long-running Python servers do: collect once, then freeze
    what is alive (the imported modules, the app, its routes and caches: some 200,000 objects)
    out of the collector's reach, and collect the youngest generation less often. `serve` does
    it when its app has started, `slotgraph worker` when its worker is made.

    A full collection walked those 200,000 objects every time: 0.13-0.30 s, in the middle of
    whichever request made the allocation that triggered it (`bench availability`: one search
    of 100 resources a run took 118-185 ms instead of 12-19 ms), or of a worker's drain (one
    of 130-260 ms every second or two of sends). Frozen objects are still freed when nothing
    refers to them; only cycles among them are never collected, and start-up makes none that
    it later drops. Garbage cycles wait for at most `YOUNG_GENERATION_THRESHOLD` allocations
    (a few MB at most) before they are collected."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
