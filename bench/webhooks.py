"""Webhook delivery: events per second with one worker, and commit-to-first-attempt latency.

Floor, measured in the same run: the same number of plain POSTs from one process to the same
receiver, with the same concurrency (32), with the client the worker sends with (aiohttp, since
issue 15's third pass) and, for comparison with the figures before it, with httpx. The ratio to
the aiohttp floor says how much of what that client can send one worker delivers; the rest is
the database round trips per delivery and the signing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import httpx

from bench.harness import Figure, auth, database, free_port, now, start, stop, wait_ready


class _Receiver:
    """The receiver process (bench/receiver.py), on its own core where there is one."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/hook"
        self.http = http
        self.process = subprocess.Popen([sys.executable, "-m", "bench.receiver", str(port)])

    async def stats(self) -> tuple[int, float]:
        for _ in range(100):
            try:
                r = await self.http.get(self.url)
                data = r.json()
                return int(data["count"]), float(data["last"])
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        raise RuntimeError("receiver not answering")

    async def count(self) -> int:
        return (await self.stats())[0]


_CONCURRENCY = 32  # the worker's WORKER_BATCH


async def _floor_aiohttp(url: str, batch: int, tag: str) -> float:
    sem = asyncio.Semaphore(_CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(i: int) -> None:
            async with sem, session.post(url, data=f"floor-{tag}-{i}".encode()) as r:
                await r.read()

        t0 = time.time()
        await asyncio.gather(*(post(i) for i in range(batch)))
        return batch / (time.time() - t0)


async def _floor_httpx(http: httpx.AsyncClient, url: str, batch: int, tag: str) -> float:
    sem = asyncio.Semaphore(_CONCURRENCY)

    async def post(i: int) -> None:
        async with sem:
            await http.post(url, content=f"floor-{tag}-{i}".encode())

    t0 = time.time()
    await asyncio.gather(*(post(i) for i in range(batch)))
    return batch / (time.time() - t0)


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
        count, last = await receiver.stats()
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
    batch = 300 if quick else 1000
    runs = 3 if quick else 5
    samples = 20 if quick else 60
    throughput, floor, floor_httpx, latency_med, latency_p90 = [], [], [], [], []
    async with served(sqlite) as it:
        url, base, h, receiver, resource = it.url, it.base, it.http, it.receiver, it.resource
        worker = None
        try:
            n = 0
            for _ in range(runs):
                # Throughput: a backlog of `batch` events, then one worker drains it.
                await _backlog(h, base, resource, n, batch)
                n += batch
                before = await receiver.count()
                worker = start(["worker"], url, {"SLOTGRAPH_WORKER_TIMER_SECONDS": "3600"}, cpu=1)
                # Timed from the first arrival to the last: worker start-up is not counted.
                first = await _wait_count(receiver, before + 1, 60)
                last = await _wait_count(receiver, before + batch, 600)
                throughput.append((batch - 1) / (last - first))
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

                # Floor: the same number of plain POSTs to the same receiver, with the
                # worker's client (aiohttp) and with httpx (the floor before the switch).
                floor.append(await _floor_aiohttp(receiver.url, batch, f"a{n}"))
                floor_httpx.append(await _floor_httpx(h, receiver.url, batch, f"h{n}"))
        finally:
            if worker is not None:
                stop(worker)
    ratio = [t / f for t, f in zip(throughput, floor, strict=True)]
    ratio_httpx = [t / f for t, f in zip(throughput, floor_httpx, strict=True)]
    return [
        Figure("webhook events delivered / s (1 worker)", throughput, "events/s"),
        Figure("floor: plain POSTs / s to the same receiver (aiohttp)", floor, "requests/s"),
        Figure("floor with httpx (before the switch)", floor_httpx, "requests/s"),
        Figure("ratio delivered / floor (aiohttp)", ratio, "x"),
        Figure("ratio delivered / httpx floor", ratio_httpx, "x"),
        Figure("commit -> first attempt, median (idle worker)", latency_med, "ms"),
        Figure("commit -> first attempt, p90 (idle worker)", latency_p90, "ms"),
    ]
