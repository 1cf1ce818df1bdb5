"""CPU per delivery, and where a slot's time goes, while one worker drains a backlog.

`python -m bench.drain [--sqlite] [--events N] [--trace]`: a fresh database, the API (no
worker, core 0) and `bench/receiver.py`; N bookings make the backlog, then one `slotgraph
worker` (core 1) drains it. Between the first and the last arrival it reads the CPU time of
the worker and of the database's PostgreSQL backends from /proc (schedstat; so the others'
load on the machine counts less than in a wall-clock ratio), and prints per delivery. With `--trace`
the worker runs with `bench/traced_worker.py`, which times each loop's steps and each
delivery's stages (claimed -> sent -> answered -> recorded) and prints them when it stops.
With `--callgrind OUT` the worker runs under `valgrind --tool=callgrind`, its instructions
counted only between the first and the last arrival (`callgrind_control -i on`, then a dump to
OUT.1): instructions per delivery, the same for the same work whatever the machine's load (the
batch sizes, which depend on timing, printed by `--trace`, may still differ). Slow: about 50x.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
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


async def drain(*, sqlite: bool, events: int, trace: bool, callgrind: str | None = None) -> None:
    async with served(sqlite) as it:
        worker = None
        steady, wide = steady_ns(), steady_ns(_WIDE)
        try:
            await _backlog(it.http, it.base, it.resource, 0, events)
            env = {"SLOTGRAPH_WORKER_TIMER_SECONDS": "3600"}
            if callgrind:  # 50x slower: no lease may run out (the same work otherwise)
                env["SLOTGRAPH_WORKER_LEASE_SECONDS"] = "36000"
            if callgrind or trace:
                worker = _start_traced(it.url, env, trace=trace, callgrind=callgrind)
            else:
                worker = start(["worker"], it.url, env, cpu=1)
            await _wait_count(it.receiver, 1, 900 if callgrind else 120)
            if callgrind:
                _callgrind_control("-i", "on", worker.pid)
                counted = events - await it.receiver.count()  # sent from here on
            db = it.url.rsplit("/", 1)[1]
            pg = [] if sqlite else await _backends(db)
            w0, p0, t0 = cpu_ms([worker.pid]), cpu_ms(pg), time.time()
            first = await _wait_count(it.receiver, 1, 1)
            last = await _wait_count(it.receiver, events, 36000 if callgrind else 600)
            w1, p1 = cpu_ms([worker.pid]), cpu_ms(pg)
            took = time.time() - t0
            done = await it.receiver.count() - 1  # the first arrived before t0
            if callgrind:
                await _recorded(it.url)  # the last sends' records counted too
                _callgrind_control("-i", "off", worker.pid)
                _callgrind_control("-d", worker.pid)
                ir = _totals(f"{callgrind}.1")
                print(
                    f"callgrind: {ir:,} instructions, {ir / counted:,.0f} per delivery"
                    f" ({counted} sent and recorded while counted)"
                )
            print(
                f"events {events}: {(events - 1) / (last - first):,.0f} events/s "
                f"(first to last arrival); from the CPU readings, {done} deliveries in "
                f"{took:.2f} s: worker {(w1 - w0) / done * 1000:.0f} us, PostgreSQL "
                f"{(p1 - p0) / done * 1000:.0f} us per delivery "
                f"(worker {(w1 - w0) / took / 10:.0f}% of a core); "
                f"load {os.getloadavg()[0]:.1f}; the steady loop on core 1 {steady:.1f}, "
                f"{steady_ns():.1f} ns a step before, after; the wide walk {wide:.1f}, "
                f"{steady_ns(_WIDE):.1f} ns"
            )
        finally:
            if worker is not None:
                stop(worker)


def _start_traced(
    url: str, env: dict[str, str], *, trace: bool, callgrind: str | None
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "bench.traced_worker" if trace else "slotgraph.cli"]
    if not trace:
        cmd.append("worker")
    if callgrind:
        vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        cmd = [*vg, f"--callgrind-out-file={callgrind}", *cmd]
    return subprocess.Popen(
        ["taskset", "-c", "1", *cmd],
        env=_env(url, env),
        stdout=sys.stdout,
        stderr=sys.stderr,
    )


# A fixed piece of work on the worker's core: the same instructions every time (a pure Python
# loop), so its CPU time says how fast the machine ran instructions then (cycles per instruction:
# hardware counters are not supported here), beside the drain's CPU per delivery.
_STEADY = """
import time
def f(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s
f(100_000)
t = time.process_time()
f(3_000_000)
print((time.process_time() - t) / 3_000_000 * 1e9)
"""


# The same for work that does not fit in the caches, as the worker's does not: random reads of
# a 400,000-entry dict (about 60 MB with its values), so the time a step takes also says what
# the memory and the caches shared with the other core and the host gave it then.
_WIDE = """
import random, time
random.seed(1)
keys = list(range(400_000))
d = {k: (k, str(k)) for k in keys}
random.shuffle(keys)
def walk():
    s = 0
    for k in keys:
        s += d[k][0]
    return s
walk()
t = time.process_time()
walk()
walk()
print((time.process_time() - t) / 800_000 * 1e9)
"""


def steady_ns(program: str = _STEADY) -> float:
    """ns of CPU per step of `_STEADY`'s loop (or `_WIDE`'s), on core 1."""
    cmd = ["taskset", "-c", "1", sys.executable, "-c", program]
    return float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


async def _recorded(url: str) -> None:
    """Until no delivery is pending (every send recorded)."""
    query = "SELECT count(*) FROM deliveries WHERE status = 'pending'"
    for _ in range(6000):
        if url.startswith("sqlite"):
            with contextlib.closing(sqlite3.connect(url.split("///", 1)[1])) as db:
                pending = db.execute(query).fetchone()[0]
        else:
            conn = await asyncpg.connect(url)
            try:
                pending = await conn.fetchval(query)
            finally:
                await conn.close()
        if not pending:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("deliveries still pending")


def _callgrind_control(*args: object) -> None:
    subprocess.run(["callgrind_control", *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def _totals(path: str) -> int:
    """The instructions (Ir) a callgrind dump counted (the worker takes the request when it
    next runs: wait for the file)."""
    for _ in range(600):
        with contextlib.suppress(OSError):
            for line in open(path):  # noqa: SIM115 (a short read)
                if line.startswith("totals:"):
                    return int(line.split()[1])
        time.sleep(0.1)
    raise RuntimeError(f"no totals in {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--callgrind", metavar="OUT", help="the worker under callgrind")
    args = parser.parse_args()
    asyncio.run(
        drain(sqlite=args.sqlite, events=args.events, trace=args.trace, callgrind=args.callgrind)
    )


if __name__ == "__main__":
    main()
