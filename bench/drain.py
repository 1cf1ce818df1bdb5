"""CPU per delivery, and where a slot's time goes, while one worker drains a backlog.

`python -m bench.drain [--sqlite] [--events N] [--trace]`: a fresh database, the API (no
worker, core 0) and `bench/receiver.py`; N bookings make the backlog, then one `slotgraph
worker` (core 1) drains it. Between the first and the last arrival it reads the CPU time of
the worker and of the database's PostgreSQL backends from /proc (schedstat; so the others'
load on the machine counts less than in a wall-clock ratio), and prints per delivery. With `--trace`
the worker runs with `bench/traced_worker.py`, which times each loop's steps and each
delivery's stages (claimed -> sent -> answered -> recorded) and prints them when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

import asyncpg

from bench.harness import ADMIN_URL, _env, cpu_ms, start, stop
from bench.webhooks import _backlog, _wait_count, served


async def _backends(name: str) -> list[int]:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", name)
    finally:
        await conn.close()
    return [r[0] for r in rows]


async def drain(*, sqlite: bool, events: int, trace: bool) -> None:
    async with served(sqlite) as it:
        worker = None
        try:
            await _backlog(it.http, it.base, it.resource, 0, events)
            env = {"SLOTGRAPH_WORKER_TIMER_SECONDS": "3600"}
            worker = _start_traced(it.url, env) if trace else start(["worker"], it.url, env, cpu=1)
            await _wait_count(it.receiver, 1, 120)
            db = it.url.rsplit("/", 1)[1]
            pg = [] if sqlite else await _backends(db)
            w0, p0, t0 = cpu_ms([worker.pid]), cpu_ms(pg), time.time()
            first = await _wait_count(it.receiver, 1, 1)
            last = await _wait_count(it.receiver, events, 600)
            w1, p1 = cpu_ms([worker.pid]), cpu_ms(pg)
            took = time.time() - t0
            done = await it.receiver.count() - 1  # the first arrived before t0
            print(
                f"events {events}: {(events - 1) / (last - first):,.0f} events/s "
                f"(first to last arrival); from the CPU readings, {done} deliveries in "
                f"{took:.2f} s: worker {(w1 - w0) / done * 1000:.0f} us, PostgreSQL "
                f"{(p1 - p0) / done * 1000:.0f} us per delivery "
                f"(worker {(w1 - w0) / took / 10:.0f}% of a core); "
                f"load {os.getloadavg()[0]:.1f}"
            )
        finally:
            if worker is not None:
                stop(worker)


def _start_traced(url: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, "-m", "bench.traced_worker"],
        env=_env(url, env),
        stdout=sys.stdout,
        stderr=sys.stderr,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    asyncio.run(drain(sqlite=args.sqlite, events=args.events, trace=args.trace))


if __name__ == "__main__":
    main()
