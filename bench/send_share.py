"""The worker's send against the floor's plain POST, in one process: what a send costs itself.

`python -m bench.send_share [--n N] [--rounds R] [--loop uvloop|asyncio]`: `bench/receiver.py`
on core 0, and in this process, pinned to core 1, on the worker's event loop (uvloop, the command
line's `cli_commands.run`; `--loop asyncio`: asyncio's default loop, the worker's before issue
15's eleventh pass), one client (`webhooks.sender.session`, as the worker and
`bench/post_floor.py` make it) sending N requests 32 at a time (`WORKER_BATCH`) three ways, in
R rounds whose order alternates: `floor`, the floor's plain POST (a 10-byte body, no headers,
`bench/post_floor.py`); `send`, `webhooks.sender.send` (an event's 1.4 KB body, signed, its
answer's first 2 KB kept); `worker`, the real `Worker`'s send slots and `Sends.send` (the
slow-target rule, the attempt counter), its database steps left out (the claims wait from the
start, the record is a no-op). Prints this process's CPU per request (`time.process_time`),
medians and the ratios to the floor within the run, which a loaded machine moves less than
each figure (issue 15, ADR 0014).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aiohttp

from bench.harness import free_port
from slotgraph import cli_commands
from slotgraph.db.engine import create_engine
from slotgraph.services.deliveries import Claim
from slotgraph.settings import Settings
from slotgraph.webhooks import sender, signing
from slotgraph.worker import Worker
from slotgraph.worker_slots import SLOW_ROOM

BATCH = 32
# About a booking event's size (docs/benchmarks.md, seventh pass: 1.4 KB).
PAYLOAD = json.dumps(
    {
        "type": "booking.created",
        "timestamp": "2026-11-30T21:00:00.123456+00:00",
        "data": {
            "booking_id": str(uuid.uuid4()),
            "resource_id": str(uuid.uuid4()),
            "start_time": "2040-01-01T00:00:00+00:00",
            "end_time": "2040-01-01T00:30:00+00:00",
            "status": "confirmed",
            "customer": {"name": "B", "email": "b1@example.com"},
            "notes": "x" * 1100,
        },
    }
)
SECRET = signing.new_secret()
Way = Callable[[aiohttp.ClientSession, str, int], Awaitable[float]]


async def floor(http: aiohttp.ClientSession, url: str, n: int) -> float:
    sem = asyncio.Semaphore(BATCH)
    t0 = time.process_time()

    async def post(i: int) -> None:
        async with sem, http.post(url, data=f"floor-x-{i}".encode()) as r:
            await r.read()

    await asyncio.gather(*(post(i) for i in range(n)))
    return time.process_time() - t0


async def send(http: aiohttp.ClientSession, url: str, n: int) -> float:
    sem = asyncio.Semaphore(BATCH)
    t0 = time.process_time()

    async def one() -> None:
        async with sem:
            outcome = await sender.send(
                http,
                url=url,
                msg_id=str(uuid.uuid4()),
                body=PAYLOAD,
                secrets_=[SECRET],
                allow_private=True,
                request_id="req-bench",
            )
            assert outcome.status_code == 200, outcome

    await asyncio.gather(*(one() for _ in range(n)))
    return time.process_time() - t0


def _worker(directory: str) -> Worker:
    settings = Settings(webhook_allow_private_networks=True, worker_batch=BATCH)
    engine = create_engine(f"sqlite:///{directory}/unused.db", settings)  # never connected
    return Worker(engine, settings, clock=lambda: datetime.now(UTC))


async def worker(w: Worker, url: str, n: int) -> float:
    """`n` claims waiting for the worker's slots; ends when all are "recorded". The claims are
    built before the clock starts (the database's rows, in the worker)."""
    w._stop.clear()
    done = 0

    async def record(results: list[tuple[Claim, object]]) -> int:
        nonlocal done
        done += len(results)
        if done >= n:
            w._stop.set()
        return len(results)

    w._record = record  # type: ignore[method-assign,assignment]
    target = uuid.uuid4()
    claims = [
        Claim(uuid.uuid4(), 1, uuid.uuid4(), target, PAYLOAD, url, [SECRET], "standard", "r")
        for _ in range(n)
    ]
    t0 = time.process_time()
    async with w.sends.client():
        w._wait(claims, datetime.now(UTC) + timedelta(hours=1))
        w._fill()
        await w._recording()
    assert done == n, done
    return time.process_time() - t0


async def run(n: int, rounds: int, url: str, directory: str) -> None:
    w = _worker(directory)
    ways: list[tuple[str, Way]] = [
        ("floor", floor),
        ("send", send),
        ("worker", lambda _http, url, n: worker(w, url, n)),
    ]
    cpu: dict[str, list[float]] = {name: [] for name, _ in ways}
    async with sender.session(connections=(1 + SLOW_ROOM) * BATCH, allow_private=True) as http:
        for _, way in ways:
            await way(http, url, 300)  # connections, caches
        for r in range(rounds):
            for name, way in ways if r % 2 == 0 else ways[::-1]:
                cpu[name].append(await way(http, url, n) / n * 1e6)
    floor_us = statistics.median(cpu["floor"])
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(f"{loop}, load {os.getloadavg()[0]:.1f}; CPU per request, {rounds} rounds of {n}:")
    for name, values in cpu.items():
        each = " ".join(f"{v:.0f}" for v in values)
        median = statistics.median(values)
        print(f"  {name}: median {median:.0f} us ({each}); {median / floor_us:.2f}x the floor")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="the event loop: the worker's (uvloop, cli_commands.run) or asyncio's default",
    )
    args = parser.parse_args()
    port = free_port()
    receiver = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "bench.receiver", str(port)]
    )
    try:
        for _ in range(500):  # until it listens (at most 5 s)
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.01)
        os.sched_setaffinity(0, {1})
        with tempfile.TemporaryDirectory() as directory:
            shares = run(args.n, args.rounds, f"http://127.0.0.1:{port}/hook", directory)
            (cli_commands.run if args.loop == "uvloop" else asyncio.run)(shares)
    finally:
        receiver.terminate()
        receiver.wait()


if __name__ == "__main__":
    main()
