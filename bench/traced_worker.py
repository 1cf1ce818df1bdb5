"""`slotgraph worker` with its steps timed (bench/drain.py --trace): when it stops, prints how
long each loop's steps took, and where each delivery's time went between its claim and the
end of its record (the slot cycle)."""

from __future__ import annotations

import atexit
import os
import statistics
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from slotgraph import cli
from slotgraph.worker import Worker
from slotgraph.worker_sends import Sends

_steps: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
_marks: dict[Any, dict[str, float]] = defaultdict(dict)


def _timed(name: str, count: Any) -> None:
    original = getattr(Worker, name)

    async def wrapper(self: Worker, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = await original(self, *args, **kwargs)
        t1 = time.perf_counter()
        _steps[name].append((t0, t1, count(out, args)))
        if name in ("_claim", "_fan_out"):
            for c in out if name == "_claim" else out[1]:
                _marks[c.delivery_id]["claimed"] = t1
        elif name == "_record":
            for c, _ in args[0]:
                _marks[c.delivery_id]["record_start"] = t0
                _marks[c.delivery_id]["recorded"] = t1
        return out

    setattr(Worker, name, wrapper)


_timed("_claim", lambda out, args: len(out))
_timed("_record", lambda out, args: len(args[0]))
_timed("_fan_out", lambda out, args: len(out[1]))  # deliveries born leased
_send = Sends.send


async def _traced_send(self: Sends, claim: Any) -> Any:
    _marks[claim.delivery_id]["sent"] = time.perf_counter()
    out = await _send(self, claim)
    _marks[claim.delivery_id]["answered"] = time.perf_counter()
    return out


Sends.send = _traced_send  # type: ignore[method-assign]


_statements: dict[str, list[float]] = defaultdict(list)


@event.listens_for(Engine, "before_cursor_execute")
def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    conn.info["t0"] = time.perf_counter()


@event.listens_for(Engine, "after_cursor_execute")
def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    _statements[" ".join(statement.split())[:60]].append(time.perf_counter() - conn.info["t0"])


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    values = sorted(values)
    q = statistics.quantiles(values, n=10) if len(values) > 1 else values * 9
    return (
        f"median {statistics.median(values) * 1000:.2f} ms, p90 {q[-1] * 1000:.2f}, "
        f"mean {statistics.fmean(values) * 1000:.2f} (n={len(values)})"
    )


def _report() -> None:
    print("\n-- traced worker --")
    for name, rows in _steps.items():
        busy = [r for r in rows if r[2]]
        print(
            f"{name}: {len(rows)} runs, {len(busy)} with work; with work: "
            f"{_ms([t1 - t0 for t0, t1, _ in busy])}; size mean "
            f"{statistics.fmean([n for *_, n in busy]) if busy else 0:.1f}"
        )
    print("statements through SQLAlchemy (the driver's own claim and record are not here):")
    for text_, times in sorted(_statements.items(), key=lambda kv: -sum(kv[1]))[:12]:
        print(f"  {text_}: {_ms(times)}")
    full = [m for m in _marks.values() if len(m) == 5]
    print(f"deliveries traced: {len(full)}")
    for label, a, b in (
        ("claimed -> sent (waits for a slot)", "claimed", "sent"),
        ("sent -> answered (HTTP)", "sent", "answered"),
        ("answered -> record starts", "answered", "record_start"),
        ("record (its statement)", "record_start", "recorded"),
        ("slot cycle: sent -> recorded", "sent", "recorded"),
    ):
        print(f"  {label}: {_ms([m[b] - m[a] for m in full])}")


atexit.register(_report)

if __name__ == "__main__":
    if out := os.environ.get("SLOTGRAPH_BENCH_PROFILE"):  # cProfile, CPU time: the top parts
        # (a value ending in .prof: the whole profile is written there too, for pstats)
        import cProfile
        import pstats

        profile = cProfile.Profile(time.process_time)
        profile.enable()
        try:
            cli.main(["worker"])
        finally:
            profile.disable()
            stats = pstats.Stats(profile)
            if out.endswith(".prof"):
                stats.dump_stats(out)
            by_part: dict[str, float] = defaultdict(float)
            for (path, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
                part = path.split("site-packages/")[-1].split("/")[0]
                if "slotgraph" in path:
                    part = "slotgraph/" + path.rsplit("/", 1)[-1]
                by_part[part] += tottime
            total = sum(by_part.values())
            for part, t in sorted(by_part.items(), key=lambda kv: -kv[1])[:25]:
                print(f"  {part}: {t:.3f} s ({t / total:.0%})")
    else:
        cli.main(["worker"])
