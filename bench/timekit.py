"""What the Timekit adapter costs: the same work through /v2 and /v1, alternating on one server.

One connection, requests one after another (latency, not throughput): a free-slot search over
4 resources and 7 days, and a booking create with an inline customer. Each round runs both
forms back to back, so load on the machine hits both alike; the figure that matters is the
ratio /v2 / /v1 of the per-round medians.
"""

from __future__ import annotations

import base64
import statistics
from datetime import UTC, datetime, timedelta

import httpx

from bench.harness import SECRET, Figure, auth, now, one_server

START = datetime(2031, 3, 3, tzinfo=UTC)  # a Monday, far from the present: nothing in the past


def basic() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f":{SECRET}".encode()).decode()}


async def _timed(http: httpx.AsyncClient, method: str, url: str, **kw: object) -> float:
    t = now()
    r = await http.request(method, url, **kw)  # type: ignore[arg-type]
    took = (now() - t) * 1000
    assert r.status_code in (200, 201), r.text
    return took


async def run(*, sqlite: bool, quick: bool) -> list[Figure]:
    rounds, per_round = (3, 5) if quick else (7, 20)
    figures: dict[str, list[float]] = {k: [] for k in ("av1", "av2", "cr1", "cr2")}
    async with one_server(sqlite) as (base, _), httpx.AsyncClient(timeout=120) as http:
        ids = []
        for i in range(4):
            r = await http.post(
                f"{base}/v1/resources",
                headers=auth(),
                json={"name": f"R{i}", "timezone": "Europe/Oslo"},
            )
            ids.append(r.json()["resource_id"])
        end = START + timedelta(days=7)
        v1_query = {
            "resource_id": ids,
            "start": START.isoformat(),
            "end": end.isoformat(),
            "duration": "PT30M",
            "limit": 5000,  # as many as /v2 answers (its cap): the same slots
        }
        v2_query = {
            "resources": ids,
            "from": START.isoformat(),
            "to": end.isoformat(),
            "length": "30 minutes",
            "mode": "roundrobin_prioritized",
        }
        one = await http.get(f"{base}/v1/availability", params=v1_query, headers=auth())
        two = await http.post(f"{base}/v2/availability", json=v2_query, headers=basic())
        assert len(one.json()["data"]) == len(two.json()["data"]) > 500
        slot = 0
        for _ in range(rounds):
            rows: dict[str, list[float]] = {k: [] for k in figures}
            for _ in range(per_round):
                rows["av1"].append(
                    await _timed(
                        http,
                        "GET",
                        f"{base}/v1/availability",
                        params=v1_query,
                        headers=auth(),
                    )
                )
                rows["av2"].append(
                    await _timed(
                        http,
                        "POST",
                        f"{base}/v2/availability",
                        json=v2_query,
                        headers=basic(),
                    )
                )
                for key, path in (("cr1", "/v1/bookings"), ("cr2", "/v2/bookings")):
                    at = START + timedelta(days=8, minutes=30 * slot)
                    slot += 1
                    times = (at.isoformat(), (at + timedelta(minutes=30)).isoformat())
                    body = (
                        {
                            "resource_id": ids[0],
                            "start_time": times[0],
                            "end_time": times[1],
                        }
                        if key == "cr1"
                        else {"resource_id": ids[0], "start": times[0], "end": times[1]}
                    )
                    body["customer"] = {"name": "B", "email": f"b{slot}@example.com"}
                    rows[key].append(
                        await _timed(
                            http,
                            "POST",
                            f"{base}{path}",
                            json=body,
                            headers=auth() if key == "cr1" else basic(),
                        )
                    )
            for k, values in rows.items():
                figures[k].append(statistics.median(values))
    ratio = [b / a for a, b in zip(figures["av1"], figures["av2"], strict=True)]
    create = [b / a for a, b in zip(figures["cr1"], figures["cr2"], strict=True)]
    return [
        Figure("availability, 4 resources x 7 days, /v1 GET", figures["av1"], "ms"),
        Figure("availability, the same, /v2 POST (Timekit)", figures["av2"], "ms"),
        Figure("ratio /v2 / /v1, availability", ratio, "x"),
        Figure("create booking, /v1", figures["cr1"], "ms"),
        Figure("create booking, /v2 (Timekit)", figures["cr2"], "ms"),
        Figure("ratio /v2 / /v1, create", create, "x"),
    ]
