"""Abuse on loopback (issue 10, "What was seen"): the worst requests, one after another, while a
steady create load runs; the steady load's p99 with and without them, and the workers' peak RSS.

- Server: 2 uvicorn workers (1 on SQLite), no in-process worker, pinned to core 0 where possible.
- Steady load: `wrk` creating bookings with the secret key (bench/create.lua), 16 connections.
- Abuse: one client sends the list below in a loop for as long as the steady load runs, each
  request after the previous answer, mostly with the public key (it is in every browser).
- Each run measures the steady load alone, then with the abuse; the ratio is of those two p99s.
- Memory: VmHWM (peak RSS) of each server process at the end.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.bookings import _peak_rss_mb, _resources, _wrk
from bench.harness import (
    SECRET,
    Figure,
    _env,
    auth,
    col,
    database,
    free_port,
    start,
    stop,
    wait_ready,
)

BIG_BODY = 100 * 1024 * 1024  # "a 100 MB body with no key"
SEARCH_DAYS = 93  # the longest search window


@dataclass
class Abuse:
    """What the abusing client saw."""

    statuses: Counter[str] = field(default_factory=Counter)
    slowest: dict[str, float] = field(default_factory=dict)
    sent: int = 0


def _nested(depth: int) -> str:
    return '{"meta": ' + '{"a": ' * depth + "1" + "}" * depth + "}"


def _requests(
    base: str, public: str, owner: str, one: str, fifty: list[str], round_: int
) -> list[tuple[str, Callable[[httpx.AsyncClient], Any]]]:
    """The issue's worst requests; search windows move every round, so no cache helps."""
    key = {"Authorization": f"Bearer {public}"}
    start = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(days=round_)
    window = {
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": (start + timedelta(days=SEARCH_DAYS)).isoformat().replace("+00:00", "Z"),
        "duration": "PT1M",
        "step": "PT1M",
    }
    customer = {"name": "Mallory", "email": "mallory@example.com"}

    secret = {"Authorization": f"Bearer {owner}"}

    def book(**fields: Any) -> Callable[[httpx.AsyncClient], Any]:
        body = {"resource_id": one, "customer": customer, **fields}
        return lambda http: http.post(f"{base}/v1/bookings", json=body, headers=key)

    def raw(content: bytes, headers: dict[str, str]) -> Callable[[httpx.AsyncClient], Any]:
        return lambda http: http.post(f"{base}/v1/bookings", content=content, headers=headers)

    json_key = {**key, "Content-Type": "application/json"}
    slot = {"start_time": "2031-05-18T10:00:00Z", "end_time": "2031-05-18T11:00:00Z"}
    return [
        (
            "availability, 1 resource, 93 days at PT1M, no limit",
            lambda http: http.get(
                f"{base}/v1/availability", params={"resource_id": one, **window}, headers=key
            ),
        ),
        (
            "availability, 50 resources, 93 days at PT1M, no limit",
            lambda http: http.get(
                f"{base}/v1/availability",
                params=[("resource_id", r) for r in fifty] + list(window.items()),
                headers=key,
            ),
        ),
        (
            "availability dates, 50 resources, 93 days",
            lambda http: http.get(
                f"{base}/v1/availability/dates",
                params=[("resource_id", r) for r in fifty] + list(window.items()),
                headers=key,
            ),
        ),
        (
            "booking from year 3000 to 5000",
            book(start_time="3000-01-01T00:00:00Z", end_time="5000-01-01T00:00:00Z"),
        ),
        (
            "booking of 100 years",
            book(start_time="2040-01-01T00:00:00Z", end_time="2140-01-01T00:00:00Z"),
        ),
        ("integer >= 2^64 in meta", book(**slot, meta={"n": 2**64})),
        ("lone surrogate", raw(b'{"customer": {"name": "\\ud800"}}', json_key)),
        ("NUL in a string", book(**slot, details="a\x00b")),
        ("JSON nested 1,000 deep", raw(_nested(1000).encode(), json_key)),
        ("malformed JSON without a key", raw(b'{"start_time": ', {})),
        ("100 MB body without a key", raw(b"x" * BIG_BODY, {"Content-Type": "application/json"})),
        (
            "instant_payment held for 50 years (public key)",
            book(**slot, graph="instant_payment", payment_timeout="P50Y"),
        ),
        (
            "group_owner class of 100,000 seats (public key)",
            book(**slot, graph="group_owner", max_seats=100_000),
        ),
        (
            "buffer_after P100Y (secret key)",
            lambda http: http.put(
                f"{base}/v1/resources/{one}", json={"buffer_after": "P100Y"}, headers=secret
            ),
        ),
    ]


async def _abuse(base: str, keys: dict[str, str], fifty: list[str], until: float) -> Abuse:
    seen = Abuse()
    round_ = 0
    async with httpx.AsyncClient(timeout=120) as http:
        while time.monotonic() < until:
            requests = _requests(
                base, keys["public_key"], keys["secret_key"], fifty[0], fifty, round_
            )
            for name, send in requests:
                if time.monotonic() >= until:
                    break
                t0 = time.perf_counter()
                try:
                    status = str((await send(http)).status_code)
                except httpx.TransportError:  # the server may close on a body it refuses
                    status = "closed"
                elapsed = (time.perf_counter() - t0) * 1000
                seen.statuses[f"{status} {name}"] += 1
                seen.slowest[name] = max(seen.slowest.get(name, 0.0), elapsed)
                seen.sent += 1
            round_ += 1
    return seen


async def run(*, sqlite: bool, quick: bool) -> list[Figure]:
    seconds = 8 if quick else 20
    runs = 1 if quick else 3
    alone: list[dict[str, float]] = []
    abused: list[dict[str, float]] = []
    seen = Abuse()
    async with database(sqlite) as url:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        workers = "1" if sqlite else "2"
        api = start(["serve", "--no-worker", "--port", str(port), "--workers", workers], url, cpu=0)
        try:
            await wait_ready(base, api)
            keys = _other_app(url)  # the abuser's app: its public key, its 50 resources
            async with httpx.AsyncClient(timeout=120) as http:
                resources = await _resources(http, base, "R", 16)
                client = (
                    await http.post(f"{base}/v1/clients", headers=auth(), json={"name": "Bench"})
                ).json()["client_id"]
                searched = [
                    (
                        await http.post(
                            f"{base}/v1/resources",
                            json={"name": f"S{i}", "timezone": "UTC"},
                            headers={"Authorization": f"Bearer {keys['secret_key']}"},
                        )
                    ).json()["resource_id"]
                    for i in range(50)
                ]
            env = {"SG_KEY": SECRET, "SG_RESOURCES": ",".join(resources), "SG_CLIENT": client}
            for i in range(runs):
                alone.append(_wrk(base, "create.lua", seconds, {**env, "SG_RUN": str(2 * i)}))
                until = time.monotonic() + seconds + 1
                task = asyncio.create_task(_abuse(base, keys, searched, until))
                load = asyncio.to_thread(
                    _wrk, base, "create.lua", seconds, {**env, "SG_RUN": str(2 * i + 1)}
                )
                abused.append(await load)
                got = await task
                seen.statuses.update(got.statuses)
                seen.sent += got.sent
                for name, ms in got.slowest.items():
                    seen.slowest[name] = max(seen.slowest.get(name, 0.0), ms)
            rss = _peak_rss_mb(api)
        finally:
            stop(api)

    figures = [
        Figure("create p99, steady load alone", col(alone, "p99"), "ms"),
        Figure("create p99, with the abuse", col(abused, "p99"), "ms"),
        Figure(
            "p99 with / without abuse (target <= 2)",
            [a / b for a, b in zip(col(abused, "p99"), col(alone, "p99"), strict=True)],
            "x",
        ),
        Figure("create throughput alone", col(alone, "rps"), "req/s"),
        Figure("create throughput with the abuse", col(abused, "rps"), "req/s"),
        Figure(f"abusive requests sent ({seen.sent} in all)", [float(seen.sent)], "requests"),
        Figure("peak RSS per server process (master, workers; target < 300)", rss, "MB"),
    ]
    figures += [Figure(f"slowest answer: {name}", [ms], "ms") for name, ms in seen.slowest.items()]
    print("\nanswers to the abuse:\n" + "\n".join(f"- {n}: {k}" for k, n in seen.statuses.items()))
    return figures


def _other_app(database_url: str) -> dict[str, str]:
    """A second app, made with the CLI: its keys are shown once, at creation."""
    cmd = [sys.executable, "-m", "slotgraph.cli", "apps", "create", "abuser"]
    out = subprocess.run(
        cmd, env=_env(database_url, {}), capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(out))
