"""The suite's isolation: `clean` (tests/conftest.py), run before each API test, leaves every
table empty, whatever a test wrote, and what it leaves is what the next test starts from."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import Api
from tests.conftest import TABLES, clean


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            t: (await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one() for t in TABLES
        }


async def test_clean_leaves_every_table_empty(api: Api, engine: AsyncEngine) -> None:
    resource, client = await api.resource(), await api.client()
    await api.book(
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time="2024-06-03T10:00:00Z",
        end_time="2024-06-03T11:00:00Z",
    )
    assert (await api.post("/v1/webhooks", {"url": "http://127.0.0.1:9/hook"})).status_code == 201
    written = {t for t, n in (await _counts(engine)).items() if n}
    assert {"apps", "api_keys", "resources", "clients", "bookings", "events"} <= written
    await clean(engine)
    assert await _counts(engine) == dict.fromkeys(TABLES, 0)
