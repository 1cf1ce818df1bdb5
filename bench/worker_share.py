"""What of a delivery's CPU is the POST, and what the rest: the two-core budget of a delivery.

`python -m bench.worker_share [--events N] [--runs R]`: a fresh PostgreSQL database, the API
(no worker, core 0) and `bench/receiver.py`; R backlogs of N bookings, each drained by one
`slotgraph worker` on core 1, alternating: a real one, then one whose webhook sends answer 200
at once without signing or POSTing (`bench/instant_worker.py`). Over each drain (after a
warm-up of 200 deliveries, counted in the database) it reads the CPU (schedstat) of the worker,
of the database's PostgreSQL backends and of the receiver, per delivery, and prints them with
what they bound: a worker as today on core 1 (core 1 carries the worker, core 0 PostgreSQL and
the receiver), and a worker split into a coordinator on core 0 (everything but the sends) and
a sender process on core 1 (the sends), before any cost of their pipe (ADR 0014).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys

import asyncpg

from bench.harness import _env, cpu_ms, stop
from bench.webhooks import Served, _backends, _backlog, _family, served

_WARM = 200


async def _succeeded(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        sql = "SELECT count(*) FROM deliveries WHERE status = 'succeeded'"
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def _until(url: str, n: int) -> int:
    """Polls until `n` deliveries succeeded; returns how many did."""
    while True:
        if (done := await _succeeded(url)) >= n:
            return done
        await asyncio.sleep(0.01)


def _worker(url: str, instant: bool) -> subprocess.Popen[bytes]:
    module = "bench.instant_worker" if instant else "slotgraph.cli"
    return subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, "-m", module, "worker"],
        env=_env(url, {"SLOTGRAPH_WORKER_TIMER_SECONDS": "3600"}),
        stdout=subprocess.DEVNULL,
    )


async def _drain(it: Served, first: int, n: int, instant: bool) -> dict[str, float]:
    """Bookings `first` .. `first + n - 1` drained by one worker: CPU per delivery (us)."""
    await _backlog(it.http, it.base, it.resource, first, n)
    base = await _succeeded(it.url)
    worker = _worker(it.url, instant)
    try:
        c0 = await _until(it.url, base + _WARM)
        pg = await _backends(it.url)
        w0, r0 = cpu_ms(_family(worker.pid)), cpu_ms([it.receiver.process.pid])
        p0 = {p: cpu_ms([p]) for p in pg}
        c1 = await _until(it.url, base + n - 50)  # the tail drains slower: left out
        pg = await _backends(it.url)
        w1, r1 = cpu_ms(_family(worker.pid)), cpu_ms([it.receiver.process.pid])
        p1 = sum(cpu_ms([p]) - p0.get(p, 0.0) for p in pg)
    finally:
        stop(worker)
    per = 1000 / (c1 - c0)
    return {"worker": (w1 - w0) * per, "postgres": p1 * per, "receiver": (r1 - r0) * per}


async def share(events: int, runs: int) -> None:
    real: list[dict[str, float]] = []
    instant: list[dict[str, float]] = []
    async with served(False) as it:
        first = 0
        for i in range(2 * runs):
            got = await _drain(it, first, events, instant=bool(i % 2))
            (instant if i % 2 else real).append(got)
            first += events
            kind = "instant" if i % 2 else "real"
            print(f"{kind}: " + ", ".join(f"{k} {v:.1f} us" for k, v in got.items()), flush=True)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    worker, rest = med(real, "worker"), med(instant, "worker")
    core0 = med(real, "postgres") + med(real, "receiver")
    print(
        f"per delivery (median): worker {worker:.1f} us, of which sends {worker - rest:.1f} and "
        f"the rest {rest:.1f}; PostgreSQL {med(real, 'postgres'):.1f}, receiver "
        f"{med(real, 'receiver'):.1f} (core 0 {core0:.1f})\n"
        f"deliveries/s bound, one worker on core 1: {1e6 / max(worker, core0):,.0f}; "
        f"split (coordinator on core 0, sender on core 1, no pipe): "
        f"{1e6 / max(core0 + rest, worker - rest):,.0f}; "
        f"split, neither pinned, no pipe: {2e6 / (core0 + worker):,.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(share(args.events, args.runs))


if __name__ == "__main__":
    main()
