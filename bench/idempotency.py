"""The cost of `Idempotency-Key`: the create benchmark with a fresh key on every request, against
the same run without keys, alternating, on the same server (PostgreSQL, 2 uvicorn workers).

A keyed create looks its key up in its own read and stores its answer in its own write
(api/idempotency.py, services/idempotency.py `Keyed`, ADR 0005).
"""

from __future__ import annotations

import httpx

from bench.bookings import _resources, _wrk
from bench.harness import SECRET, Figure, auth, col, database, free_port, start, stop, wait_ready


async def run(*, sqlite: bool, quick: bool) -> list[Figure]:
    seconds = 2 if quick else 10
    runs = 5
    plain: list[dict[str, float]] = []
    keyed: list[dict[str, float]] = []
    async with database(sqlite) as url:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        workers = "1" if sqlite else "2"
        api = start(["serve", "--no-worker", "--port", str(port), "--workers", workers], url, cpu=0)
        try:
            await wait_ready(base, api)
            async with httpx.AsyncClient(timeout=120) as http:
                resources = await _resources(http, base, "R", 16)
                client = (
                    await http.post(f"{base}/v1/clients", headers=auth(), json={"name": "Bench"})
                ).json()["client_id"]
            env = {"SG_KEY": SECRET, "SG_RESOURCES": ",".join(resources), "SG_CLIENT": client}
            for i in range(runs):
                plain.append(_wrk(base, "create.lua", seconds, {**env, "SG_RUN": str(2 * i)}))
                keyed.append(
                    _wrk(
                        base,
                        "create.lua",
                        seconds,
                        {**env, "SG_RUN": str(2 * i + 1), "SG_IDEMPOTENCY": "1"},
                    )
                )
        finally:
            stop(api)

    return [
        Figure("create booking, no key, 16 connections", col(plain, "rps"), "req/s"),
        Figure("create booking, Idempotency-Key on each", col(keyed, "rps"), "req/s"),
        Figure(
            "ratio keyed / no key (target >= 0.85)",
            [k / p for k, p in zip(col(keyed, "rps"), col(plain, "rps"), strict=True)],
            "x",
        ),
        Figure("create p50, no key", col(plain, "p50"), "ms"),
        Figure("create p50, keyed", col(keyed, "p50"), "ms"),
        Figure("create p99, no key", col(plain, "p99"), "ms"),
        Figure("create p99, keyed", col(keyed, "p99"), "ms"),
    ]
