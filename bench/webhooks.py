"""Webhook delivery: events per second with one worker, and commit-to-first-attempt latency.

Floor, measured in the same run under the same conditions: plain POSTs to the same receiver
from one process pinned to the worker's core (core 1), with the client the worker sends with
(`webhooks.sender.session`) and the same concurrency (32). Each run is a pair, the worker's
drain and the floor back to back (which goes first alternates), each sender warmed up by
`_WARM` messages before its timed `batch` (1,000, or 3,000 without `--quick`), both timed by
the receiver's clock from the first timed arrival to the last; the ratio is taken per pair.
The CPU time of both senders over the timed stretch (schedstat, to the nanosecond) is reported
per message: on a loaded machine it says more than the wall-clock ratio. Before 2026-11-30's
eighth pass the floor was 300 (or 1,000) POSTs from the bench's own unpinned process, cold,
timed by its own clock (docs/benchmarks.md, "Webhooks", eighth pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from bench.harness import (
    Figure,
    auth,
    cpu_ms,
    database,
    free_port,
    now,
    start,
    stop,
    wait_ready,
)


class _Receiver:
    """The receiver process (bench/receiver.py), pinned to core 0, the core the sender (the
    worker, or the floor's client, on core 1) does not use. Unpinned, the scheduler put it on
    either core: on the sender's, the floor's client spent about 111 us of CPU a POST against 90
    and sent 6,100 POSTs/s against 9,100 (docs/benchmarks.md, twelfth pass), so each pair's ratio
    depended on where it ran."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/hook"
        self.http = http
        self.process = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, "-m", "bench.receiver", str(port)]
        )

    async def stats(self, at: int = 0) -> tuple[int, float, float | None]:
        """The distinct messages so far, the last one's arrival and the `at`-th one's."""
        for _ in range(100):
            try:
                r = await self.http.get(f"{self.url}?at={at}" if at else self.url)
                data = r.json()
                return int(data["count"]), float(data["last"]), data.get("at")
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        raise RuntimeError("receiver not answering")

    async def count(self) -> int:
        return (await self.stats())[0]


_WARM = 200  # messages each sender sends before its timed stretch (connections, caches)


@dataclass
class Stretch:
    """A timed stretch of arrivals: its rate (from the receiver's clock), the sender's CPU per
    message over it (schedstat, read as the receiver's count passed its two ends: all the
    worker's processes, its sender child included), and the same for the other processes that
    share the machine during it ("receiver", "postgres": the backends of the bench's database)."""

    per_second: float
    cpu_us: float
    others: dict[str, float]


Pids = Callable[[], Awaitable[dict[str, list[int]]]]


def _family(pid: int) -> list[int]:
    """`pid` and its children, grandchildren included (a worker's sender child)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
    return out


def _cpu(pids: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    return {name: {p: cpu_ms([p]) for p in group} for name, group in pids.items()}


async def _stretch(receiver: _Receiver, pids: Pids, first: int, n: int, seconds: float) -> Stretch:
    """Arrivals `first` + 1 .. `first` + `n` (those before are the sender's warm-up); `pids`
    names the processes whose CPU is read ("sender" and any others)."""
    deadline = now() + seconds
    c0 = cpu0 = None
    while True:
        count, _, _ = await receiver.stats()
        if c0 is None and count >= first:
            c0, cpu0 = count, _cpu(await pids())
        if count >= first + n:
            c1, cpu1 = count, _cpu(await pids())
            break
        if now() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.005)
    _, _, t0 = await receiver.stats(first)
    _, _, t1 = await receiver.stats(first + n)
    assert t0 is not None
    assert t1 is not None
    assert cpu0 is not None
    assert c0 is not None
    per = {  # a process started within the stretch counts from its start
        name: sum(ms - cpu0.get(name, {}).get(p, 0.0) for p, ms in group.items())
        / max(1, c1 - c0)
        * 1000
        for name, group in cpu1.items()
    }
    sender = per.pop("sender")
    return Stretch(n / (t1 - t0), sender, per)


def _pids(sender: int, receiver: _Receiver, url: str) -> Pids:
    """The processes a stretch reads: the sender's (the worker, or the floor's client) with its
    children, its main process alone ("main": a worker's coordinator), the receiver, and the
    bench database's PostgreSQL backends."""

    async def read() -> dict[str, list[int]]:
        return {
            "sender": _family(sender),
            "main": [sender],
            "receiver": [receiver.process.pid],
            "postgres": await _backends(url),
        }

    return read


async def _backends(url: str) -> list[int]:
    """The PostgreSQL backends of the bench's database (the API's and the worker's pools)."""
    if url.startswith("sqlite"):
        return []
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]


def _post_floor(url: str, n: int, tag: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, "-m", "bench.post_floor", url, str(n), tag]
    )


async def _floor(receiver: _Receiver, url: str, warm: int, n: int, tag: str) -> Stretch:
    """Plain POSTs from `bench/post_floor.py`, on the worker's core, with the worker's client:
    `warm` first, then the `n` timed."""
    before = await receiver.count()
    client = _post_floor(receiver.url, warm + n, tag)
    try:
        return await _stretch(receiver, _pids(client.pid, receiver, url), before + warm, n, 120)
    finally:
        client.wait()


async def _book(http: httpx.AsyncClient, base: str, resource: str, i: int) -> float:
    start_at = datetime(2040, 1, 1, tzinfo=UTC) + timedelta(hours=i)
    r = await http.post(
        f"{base}/v1/bookings",
        headers=auth(),
        json={
            "resource_id": resource,
            "start_time": start_at.isoformat(),
            "end_time": (start_at + timedelta(minutes=30)).isoformat(),
            "customer": {"name": "B", "email": f"b{i % 50}@example.com"},
            "notify": False,  # the webhook channel alone: no confirmation emails in the queue
        },
    )
    assert r.status_code == 201, r.text
    return time.time()


async def _subscribed(http: httpx.AsyncClient, base: str, receiver: _Receiver) -> str:
    """A webhook to `receiver` for every event, and a resource to book: its id."""
    r = await http.post(f"{base}/v1/webhooks", headers=auth(), json={"url": receiver.url})
    assert r.status_code == 201, r.text
    r = await http.post(
        f"{base}/v1/resources", headers=auth(), json={"name": "Bench", "timezone": "UTC"}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["resource_id"])


async def _backlog(http: httpx.AsyncClient, base: str, resource: str, first: int, n: int) -> None:
    """Bookings `first` .. `first + n - 1` of `resource`, 16 at a time: `n` events waiting."""
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with sem:
            await _book(http, base, resource, i)

    await asyncio.gather(*(one(first + i) for i in range(n)))


async def _wait_count(receiver: _Receiver, target: int, seconds: float) -> float:
    """Poll until the receiver has `target` distinct messages; returns the last arrival time."""
    deadline = now() + seconds
    while True:
        count, last, _ = await receiver.stats()
        if count >= target:
            return last
        if now() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.01)


@dataclass
class Served:
    """What a webhook bench runs against: the database, the API's client, a receiver, and a
    resource whose bookings' events go to it."""

    url: str
    base: str
    http: httpx.AsyncClient
    receiver: _Receiver
    resource: str


@contextlib.asynccontextmanager
async def served(sqlite: bool) -> AsyncIterator[Served]:
    """A fresh database, `slotgraph serve --no-worker` on core 0, a receiver in its own process
    and a webhook to it (the workers are the caller's): stopped and removed on the way out."""
    async with database(sqlite) as url:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        api = start(["serve", "--no-worker", "--port", str(port)], url, cpu=0)
        receiver: _Receiver | None = None
        try:
            await wait_ready(base, api)
            async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as h:
                receiver = _Receiver(h)
                await receiver.count()
                resource = await _subscribed(h, base, receiver)
                yield Served(url, base, h, receiver, resource)
        finally:
            stop(api)
            if receiver is not None:
                receiver.process.terminate()
                receiver.process.wait()


async def run(*, sqlite: bool, quick: bool) -> list[Figure]:
    """`runs` pairs, each a worker's drain and the floor back to back (the order alternating),
    each timed over its last `batch` arrivals after a warm-up of `_WARM`; a ratio per pair."""
    batch = 1000 if quick else 3000
    runs = 3 if quick else 5
    samples = 20 if quick else 60
    throughput, floor, ratio, latency_med, latency_p90 = [], [], [], [], []
    cpu_worker, cpu_floor, cpu_main, cpu_pg = [], [], [], []
    cpu_recv, cpu_recv_floor = [], []
    async with served(sqlite) as it:
        url, base, h, receiver, resource = it.url, it.base, it.http, it.receiver, it.resource
        worker = None
        try:
            n = 0
            for i in range(runs):
                await _backlog(h, base, resource, n, _WARM + batch)
                n += _WARM + batch
                if i % 2:
                    plain = await _floor(receiver, url, _WARM, batch, f"a{n}")
                before = await receiver.count()
                worker = start(["worker"], url, {"SLOTGRAPH_WORKER_TIMER_SECONDS": "3600"}, cpu=1)
                drained = await _stretch(
                    receiver, _pids(worker.pid, receiver, url), before + _WARM, batch, 600
                )
                if not i % 2:
                    plain = await _floor(receiver, url, _WARM, batch, f"a{n}")
                throughput.append(drained.per_second)
                floor.append(plain.per_second)
                ratio.append(drained.per_second / plain.per_second)
                cpu_worker.append(drained.cpu_us)
                cpu_floor.append(plain.cpu_us)
                cpu_main.append(drained.others["main"])
                cpu_pg.append(drained.others["postgres"])
                cpu_recv.append(drained.others["receiver"])
                cpu_recv_floor.append(plain.others["receiver"])
                # Latency: the worker is idle; one booking at a time.
                lat = []
                rng = random.Random(len(latency_med))
                for _ in range(samples):
                    await asyncio.sleep(rng.uniform(0, 0.4))  # independent arrivals
                    target = await receiver.count() + 1
                    committed = await _book(h, base, resource, n)
                    n += 1
                    arrived = await _wait_count(receiver, target, 30)
                    lat.append((arrived - committed) * 1000)
                latency_med.append(statistics.median(lat))
                latency_p90.append(statistics.quantiles(lat, n=10)[-1])
                stop(worker)
                worker = None
        finally:
            if worker is not None:
                stop(worker)
    cpu_ratio = [f / w for f, w in zip(cpu_floor, cpu_worker, strict=True)]
    return [
        Figure("webhook events delivered / s (1 worker, core 1)", throughput, "events/s"),
        Figure("floor: plain POSTs / s, the worker's client on core 1", floor, "requests/s"),
        Figure("ratio delivered / floor, per pair", ratio, "x"),
        Figure("worker CPU per delivery, all its processes", cpu_worker, "us"),
        Figure("  of which its main process", cpu_main, "us"),
        Figure("PostgreSQL backends' CPU per delivery (the bench database's)", cpu_pg, "us"),
        Figure("receiver CPU per delivery", cpu_recv, "us"),
        Figure("receiver CPU per floor POST", cpu_recv_floor, "us"),
        Figure("floor client CPU per POST", cpu_floor, "us"),
        Figure("CPU ratio: floor client per POST / worker per delivery", cpu_ratio, "x"),
        Figure("commit -> first attempt, median (idle worker)", latency_med, "ms"),
        Figure("commit -> first attempt, p90 (idle worker)", latency_p90, "ms"),
    ]
