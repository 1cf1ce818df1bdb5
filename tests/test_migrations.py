"""Migrations upgrade a database that has data in it, on both backends, and step down again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.engine import create_engine
from slotgraph.db.migrate import migrate
from slotgraph.db.models import App, Delivery, DeliveryAttempt, Event, WebhookEndpoint
from tests.conftest import BACKENDS, create_postgres_database, drop_postgres_database

ROWS = [
    "INSERT INTO apps (id, name, created_at) VALUES ({app}, 'a', '2024-01-01 00:00:00')",
    "INSERT INTO resources (id, app_id, name, timezone, meta, created_at, updated_at) "
    "VALUES ({res}, {app}, 'r', 'UTC', '{{}}', '2024-01-01 00:00:00', '2024-01-01 00:00:00')",
    "INSERT INTO bookings (id, app_id, graph, status, resource_id, start_time, end_time, meta, "
    "version, created_at, updated_at) VALUES ({bk}, {app}, 'instant', 'confirmed', {res}, "
    "'2024-01-02 10:00:00', '2024-01-02 11:00:00', '{{}}', 1, '2024-01-01 00:00:00', "
    "'2024-01-01 00:00:00')",
    "INSERT INTO booking_holds (id, booking_id, resource_id, start_time, end_time, active) "
    "VALUES ({hold}, {bk}, {res}, '2024-01-02 10:00:00', '2024-01-02 11:00:00', {true})",
]


@pytest.fixture(params=BACKENDS)
async def empty_engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
        yield engine
        await engine.dispose()
        return
    url = await create_postgres_database("slotgraph_migrations")
    engine = create_engine(url)
    yield engine
    await engine.dispose()
    await drop_postgres_database(url)


async def test_upgrade_with_data_then_down_and_up(empty_engine: AsyncEngine) -> None:
    pg = empty_engine.dialect.name == "postgresql"

    def uid(n: int) -> str:
        hexa = f"{n:032x}"
        return (
            f"'{hexa[:8]}-{hexa[8:12]}-{hexa[12:16]}-{hexa[16:20]}-{hexa[20:]}'"
            if pg
            else (f"'{hexa}'")
        )

    await migrate(empty_engine, "0001")
    ids = {
        "app": uid(1),
        "res": uid(2),
        "bk": uid(3),
        "hold": uid(4),
        "true": "true" if pg else "1",
    }
    async with empty_engine.begin() as conn:
        for sql in ROWS:
            await conn.execute(text(sql.format(**ids)))
    await migrate(empty_engine, "head")
    async with empty_engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT r.slot_step, r.min_notice, b.auto_complete, h.block_id, r.exceptions "
                    "FROM resources r JOIN bookings b ON b.resource_id = r.id "
                    "JOIN booking_holds h ON h.booking_id = b.id"
                )
            )
        ).one()
    # min_notice: the old default PT0S (0) was never chosen, so it becomes "none" (NULL).
    assert tuple(row[:4]) == (900, None, True, None)
    assert row[4] in ([], "[]")  # an existing resource has no exceptions to its weekly hours
    async with empty_engine.connect() as conn:
        settings = (await conn.execute(text("SELECT settings FROM apps"))).scalar()
    assert settings in ({}, "{}")  # an existing app reads back every default setting
    async with empty_engine.connect() as conn:
        feed = (
            await conn.execute(
                text("SELECT feed_generation, feed_token_hash, feed_shows_details FROM resources")
            )
        ).one()
        secret = (await conn.execute(text("SELECT value FROM instance_secrets"))).scalar()
    assert (feed[0], feed[1], bool(feed[2])) == (1, None, False)
    assert secret is not None
    assert len(secret) == 64
    await migrate(empty_engine, "0001")
    await migrate(empty_engine, "head")
    async with empty_engine.connect() as conn:
        count = (await conn.execute(text("SELECT COUNT(*) FROM booking_holds"))).scalar()
    assert count == 1


async def test_an_upgrade_keeps_deliveries_and_their_attempts(empty_engine: AsyncEngine) -> None:
    """0018 takes the foreign keys off deliveries and attempts; on SQLite that rebuilds both
    tables with foreign keys enforced, so a database holding an attempt of a delivery must come
    through whole (rebuilding `deliveries` first failed there: FOREIGN KEY constraint failed)."""
    await migrate(empty_engine, "0017")
    now = datetime(2024, 1, 1, tzinfo=UTC)
    app, endpoint, event, delivery, attempt = (uuid.UUID(int=n) for n in range(11, 16))
    common = {"app_id": app, "created_at": now}
    rows: list[tuple[Any, dict[str, Any]]] = [
        (App, {"id": app, "name": "a", "created_at": now}),
        (
            WebhookEndpoint,
            common
            | {"id": endpoint, "url": "https://e.test/h", "secret": "s"}
            | {"updated_at": now},
        ),
        (Event, common | {"id": event, "seq": 1, "type": "booking.created", "payload": "{}"}),
        (
            Delivery,
            common
            | {"id": delivery, "endpoint_id": endpoint, "event_id": event}
            | {"event_seq": 1, "status": "succeeded", "attempts": 1, "updated_at": now},
        ),
        (
            DeliveryAttempt,
            {"id": attempt, "delivery_id": delivery, "endpoint_id": endpoint}
            | {"event_id": event, "attempt": 1, "at": now, "status_code": 200, "duration_ms": 5}
            | {"worker_id": "w"},
        ),
    ]
    async with empty_engine.begin() as conn:
        for model, values in rows:
            await conn.execute(insert(model.__table__).values(**values))
    await migrate(empty_engine, "head")
    async with empty_engine.connect() as conn:
        joined = (
            await conn.execute(
                select(Delivery.status, DeliveryAttempt.status_code).join(
                    DeliveryAttempt, DeliveryAttempt.delivery_id == Delivery.id
                )
            )
        ).all()
    assert [tuple(r) for r in joined] == [("succeeded", 200)]
    await migrate(empty_engine, "0017")  # and down again: the keys come back over the same rows
    await migrate(empty_engine, "head")


async def test_an_upgrade_queues_the_undispatched_events(empty_engine: AsyncEngine) -> None:
    """0019 moves the fan-out's queue from a mark on `events` to `events_undispatched`: an event
    not yet fanned out before the upgrade is queued by it, a new one is queued as it is written
    (a trigger) unless it was written dispatched (a `webhook.test`), and a downgrade marks
    what was fanned out meanwhile and keeps the rest unmarked."""
    await migrate(empty_engine, "0018")
    now = datetime(2024, 1, 1, tzinfo=UTC)
    app = uuid.UUID(int=21)

    async def add(seq: int, dispatched: bool) -> None:
        values = {
            **{"id": uuid.UUID(int=100 + seq), "seq": seq, "app_id": app, "created_at": now},
            **{"type": "booking.created", "payload": "{}"},
            **{"dispatched_at": now if dispatched else None},
        }
        async with empty_engine.begin() as conn:
            await conn.execute(insert(Event.__table__).values(**values))

    async def queued() -> list[int]:
        async with empty_engine.connect() as conn:
            rows = await conn.execute(text("SELECT seq FROM events_undispatched ORDER BY seq"))
            return [r[0] for r in rows]

    async def undispatched() -> list[int]:
        async with empty_engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT seq FROM events WHERE dispatched_at IS NULL ORDER BY seq")
            )
            return [r[0] for r in rows]

    async with empty_engine.begin() as conn:
        await conn.execute(insert(App.__table__).values(id=app, name="a", created_at=now))
    await add(1, dispatched=True)
    await add(2, dispatched=False)
    await migrate(empty_engine, "head")
    assert await queued() == [2]
    await add(3, dispatched=False)
    await add(4, dispatched=True)  # a webhook.test: its delivery is written with it
    assert await queued() == [2, 3]
    async with empty_engine.begin() as conn:  # a fan-out takes 2 off the queue
        await conn.execute(text("DELETE FROM events_undispatched WHERE seq = 2"))
    await migrate(empty_engine, "0018")
    assert await undispatched() == [3]
    await migrate(empty_engine, "head")
    assert await queued() == [3]
