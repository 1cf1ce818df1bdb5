"""A route added after the first request gets the same checks as the others (ADR 0010, 0011):
the guard's table (the key before the body) and the Idempotency-Key middleware's table (a keyed
write is answered once) are built again when a route is added, as the dispatch's index is.

Before, both tables were built at the first request and kept: a secret-key route added later
parsed its body before any key was asked for (400 for malformed JSON without a key, where every
other route answers 401), and a keyed write to it ran twice.
"""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.api.app import create_app
from slotgraph.api.deps import SecretKey
from tests.api.conftest import TEST_SETTINGS, Api


async def test_a_route_added_after_the_first_request_is_guarded_and_keyed(
    engine: AsyncEngine, api: Api
) -> None:
    app = create_app(TEST_SETTINGS, engine=engine, clock=api.clock)
    calls: list[int] = []

    async def late(principal: SecretKey, body: dict[str, int]) -> dict[str, int]:
        calls.append(body["n"])
        return {"calls": len(calls)}

    secret = {"Authorization": f"Bearer {api.secret_key}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        # Every table is built, without the route below (the idempotency middleware's at the
        # first keyed write).
        made = await http.post(
            "/v1/resources",
            json={"name": "Room", "timezone": "UTC"},
            headers={**secret, "Idempotency-Key": "first"},
        )
        assert made.status_code == 201, made.text
        app.add_api_route("/v1/late", late, methods=["POST"])
        malformed = {"Content-Type": "application/json"}
        no_key = await http.post("/v1/late", content=b'{"n": ', headers=malformed)
        public = {"Authorization": f"Bearer {api.public_key}", **malformed}
        wrong_key = await http.post("/v1/late", content=b'{"n": ', headers=public)
        keyed = {**secret, "Idempotency-Key": "late-1"}
        first = await http.post("/v1/late", json={"n": 1}, headers=keyed)
        again = await http.post("/v1/late", json={"n": 1}, headers=keyed)
    assert no_key.status_code == 401, no_key.text  # the key before the body (ADR 0010)
    assert no_key.headers["content-type"] == "application/problem+json"
    assert wrong_key.status_code == 403, wrong_key.text
    assert first.status_code == 200, first.text
    assert (again.status_code, again.json()) == (200, {"calls": 1})  # replayed, not run again
    assert again.headers.get("idempotent-replayed") == "true", again.headers
    assert calls == [1]
