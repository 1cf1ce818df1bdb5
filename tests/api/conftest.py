"""API tests: the real app over httpx ASGI transport, a clean database, a settable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.api.app import create_app
from slotgraph.db.engine import session_factory
from slotgraph.services import apps
from slotgraph.settings import Settings
from tests.conftest import clean

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Api:
    """An HTTP client authenticated as one app; `as_key` switches the key."""

    http: httpx.AsyncClient
    secret_key: str
    public_key: str
    clock: Clock
    backend: str
    key: str = ""
    made: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.key = self.key or self.secret_key

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self._headers())

    async def post(self, path: str, body: Any = None) -> httpx.Response:
        return await self.http.post(path, json=body, headers=self._headers())

    async def put(self, path: str, body: Any = None) -> httpx.Response:
        return await self.http.put(path, json=body, headers=self._headers())

    async def delete(self, path: str) -> httpx.Response:
        return await self.http.delete(path, headers=self._headers())

    def as_key(self, key: str) -> Api:
        return Api(self.http, self.secret_key, self.public_key, self.clock, self.backend, key)

    # -- factories: plain functions over the public API ------------------------------------------

    async def resource(self, **fields: Any) -> dict[str, Any]:
        body = {"name": "Dr. Berg", "timezone": "Europe/Oslo", **fields}
        r = await self.post("/v1/resources", body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def client(self, **fields: Any) -> dict[str, Any]:
        n = len(self.made) + 1
        self.made[f"client{n}"] = True
        body = {"name": f"Client {n}", "email": f"client{n}@example.com", **fields}
        r = await self.post("/v1/clients", body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def book(self, expect: int = 201, **fields: Any) -> dict[str, Any]:
        r = await self.post("/v1/bookings", fields)
        assert r.status_code == expect, r.text
        return dict(r.json())


async def store_as_before(
    engine: AsyncEngine, api: Api, table: str, row_id: str, **values: Any
) -> None:
    """Write `values` straight into a row, as an older version (without a rule added since) let
    them in: what a rule must do with data already stored. SQLite keeps ids without dashes."""
    sets = ", ".join(f"{column} = :{column}" for column in values)
    stored_id = row_id if api.backend == "postgresql" else row_id.replace("-", "")
    async with engine.begin() as conn:
        await conn.execute(
            text(f"UPDATE {table} SET {sets} WHERE id = :id"), {**values, "id": stored_id}
        )


TEST_SETTINGS = Settings(run_worker=False, webhook_allow_private_networks=True)


async def make_api(
    engine: AsyncEngine, clock: Clock, settings: Settings = TEST_SETTINGS
) -> tuple[httpx.AsyncClient, apps.CreatedApp]:
    async with session_factory(engine)() as session:
        created = await apps.create_tenant(session, name="test", now=clock.now)
    app = create_app(settings, engine=engine, clock=clock)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return http, created


@pytest.fixture
async def api(engine: AsyncEngine) -> AsyncIterator[Api]:
    await clean(engine)
    clock = Clock()
    http, created = await make_api(engine, clock)
    async with http:
        yield Api(http, created.secret_key, created.public_key, clock, engine.dialect.name)


@pytest.fixture
async def other_api(api: Api, engine: AsyncEngine) -> AsyncIterator[Api]:
    """A second app on the same database and clock."""
    http, created = await make_api(engine, api.clock)
    async with http:
        yield Api(http, created.secret_key, created.public_key, api.clock, api.backend)


async def book_day(api: Api, resource: dict[str, Any], client: dict[str, Any], day: int) -> str:
    """An hour booked on 2024-06-<day>, webhooks only (no emails): its booking id."""
    booked = await api.book(
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time=f"2024-06-{day:02d}T10:00:00Z",
        end_time=f"2024-06-{day:02d}T11:00:00Z",
        notify=False,
    )
    return str(booked["booking_id"])


async def book_days(api: Api, days: int) -> None:
    """One booking a day from 1 June 2024: one `booking.confirmed` event each."""
    resource, client = await api.resource(), await api.client()
    for day in range(1, days + 1):
        await book_day(api, resource, client, day)


@asynccontextmanager
async def sqlite_steps(engine: AsyncEngine) -> AsyncIterator[list[int]]:
    """Counts SQLite's work while the block runs, in steps of 100 virtual-machine instructions
    (its progress handler): `[steps]`, read after the block. SQLite only: the process's one
    connection."""
    counted = [0]

    def step() -> int:
        counted[0] += 1
        return 0

    async with engine.connect() as conn:
        raw: Any = (await conn.get_raw_connection()).driver_connection
    db = raw._conn
    db.set_progress_handler(step, 100)
    try:
        yield counted
    finally:
        db.set_progress_handler(None, 100)
