"""On PostgreSQL a plain create is two round trips and no transaction of its own (ADR 0005):
one unlocked read of the resource, and one statement that locks it, checks that it did not
change since, and writes everything. If it changed in between, that statement writes nothing
and the create takes the locked way, under the resource as it is now.

Round trips are observed where they leave for the driver: statements at SQLAlchemy's cursor, or
at asyncpg's own methods for those sent straight on it (tests/api/driver_calls.py: the
optimistic create's read and write); BEGIN/COMMIT/ROLLBACK at asyncpg's query logger (which sees
the simple-query messages).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_

from tests.api.conftest import Api
from tests.api.driver_calls import Hook, asyncpg_statements

pytestmark = pytest.mark.usefixtures("postgresql_only")


@pytest.fixture
def postgresql_only(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("round trips and row versions are PostgreSQL's; SQLite is in-process")


@asynccontextmanager
async def round_trips(
    engine: AsyncEngine, before_statement: Hook = lambda _: None
) -> AsyncIterator[list[str]]:
    sent: list[str] = []

    def simple_query(record: Any) -> None:  # BEGIN, COMMIT, ROLLBACK, once answered
        if not record.args:
            sent.append(record.query.split()[0].upper().rstrip(";"))

    def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        dbapi_conn.driver_connection.add_query_logger(simple_query)

    def checkin(dbapi_conn: Any, _record: Any) -> None:
        if dbapi_conn is not None:
            dbapi_conn.driver_connection.remove_query_logger(simple_query)

    def statement(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        sent.append(sql.split()[0].upper())
        pending = before_statement(sql)
        if pending is not None:
            await_(pending)

    def on_driver(sql: str) -> Awaitable[None] | None:
        sent.append(sql.split()[0].upper())
        return before_statement(sql)

    event.listen(engine.sync_engine.pool, "checkout", checkout)
    event.listen(engine.sync_engine.pool, "checkin", checkin)
    event.listen(engine.sync_engine, "before_cursor_execute", statement)
    try:
        with asyncpg_statements(engine, on_driver):
            yield sent
        # asyncpg calls its query loggers one turn of the loop after the query (call_soon): let
        # those scheduled by now run (a COMMIT just before the answer was not logged yet when
        # nothing else awaited after it).
        await asyncio.sleep(0)
    finally:
        event.remove(engine.sync_engine.pool, "checkout", checkout)
        event.remove(engine.sync_engine.pool, "checkin", checkin)
        event.remove(engine.sync_engine, "before_cursor_execute", statement)


async def setup(api: Api) -> dict[str, str]:
    resource = await api.resource()
    client = await api.client()
    body = {"resource_id": resource["resource_id"], "client_id": client["client_id"]}
    # Warm: the key is cached (no query to authenticate), the statements are prepared.
    await api.book(**body, start_time="2024-06-03T08:00:00Z", end_time="2024-06-03T09:00:00Z")
    return body


async def counts(database_url: str, resource_id: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM bookings WHERE resource_id = $1),"
            " (SELECT count(*) FROM booking_holds WHERE resource_id = $1),"
            " (SELECT count(*) FROM events e JOIN bookings b ON b.id = e.booking_id"
            "  WHERE b.resource_id = $1)",
            uuid.UUID(resource_id),
        )
    finally:
        await conn.close()
    return row[0], row[1], row[2]


async def test_a_create_is_one_read_and_one_write(api: Api, engine: AsyncEngine) -> None:
    body = await setup(api)
    async with round_trips(engine) as sent:
        await api.book(**body, start_time="2024-06-03T10:00:00Z", end_time="2024-06-03T11:00:00Z")
    assert sent == ["SELECT", "WITH"]


def changing_the_resource_before_the_write(database_url: str, resource_id: str, sql: str) -> Hook:
    """A hook that, just before the create's write goes out, changes the resource from another
    connection (committed), once."""
    done: list[bool] = []

    def hook(statement: str) -> Awaitable[None] | None:
        if done or not statement.startswith("WITH gate"):
            return None
        done.append(True)

        async def change() -> None:
            conn = await asyncpg.connect(database_url)
            try:
                await conn.execute(sql, uuid.UUID(resource_id))
            finally:
                await conn.close()

        return change()

    return hook


async def test_a_resource_changed_meanwhile_is_booked_once_the_locked_way(
    api: Api, engine: AsyncEngine, database_urls: dict[str, str]
) -> None:
    body = await setup(api)
    hook = changing_the_resource_before_the_write(
        database_urls["postgresql"],
        body["resource_id"],
        "UPDATE resources SET name = name || ' (renamed)' WHERE id = $1",
    )
    async with round_trips(engine, hook) as sent:
        r = await api.post(
            "/v1/bookings",
            {**body, "start_time": "2024-06-03T10:00:00Z", "end_time": "2024-06-03T11:00:00Z"},
        )
    assert r.status_code == 201, r.text
    # The optimistic write found a new row version and wrote nothing; then the locked way: the
    # driver sends its BEGIN just before the first statement of the transaction (logged here
    # once answered, so after that statement's name).
    assert sent == ["SELECT", "WITH", "SELECT", "BEGIN", "WITH", "COMMIT"]
    assert await counts(database_urls["postgresql"], body["resource_id"]) == (2, 2, 2)


async def test_a_resource_archived_meanwhile_takes_no_booking(
    api: Api, engine: AsyncEngine, database_urls: dict[str, str]
) -> None:
    body = await setup(api)
    hook = changing_the_resource_before_the_write(
        database_urls["postgresql"],
        body["resource_id"],
        "UPDATE resources SET archived_at = now() WHERE id = $1",
    )
    async with round_trips(engine, hook):
        r = await api.post(
            "/v1/bookings",
            {**body, "start_time": "2024-06-03T10:00:00Z", "end_time": "2024-06-03T11:00:00Z"},
        )
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "resource_archived"
    assert await counts(database_urls["postgresql"], body["resource_id"]) == (1, 1, 1)


# With an Idempotency-Key the create is as many round trips, and still no transaction of its own:
# the read also looks the key up, and the one write stores the answer beside the booking (and
# writes nothing if the key was answered meanwhile).


async def keyed_post(api: Api, body: dict[str, str], key: str) -> Any:
    headers = {"Authorization": f"Bearer {api.key}", "Idempotency-Key": key}
    return await api.http.post("/v1/bookings", json=body, headers=headers)


async def stored_answers(database_url: str, key: str) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT status_code, body FROM idempotency_keys WHERE key = $1", key
        )
    finally:
        await conn.close()
    return [(r[0], r[1]) for r in rows]


async def test_a_keyed_create_is_one_read_and_one_write(
    api: Api, engine: AsyncEngine, database_urls: dict[str, str]
) -> None:
    body = await setup(api)
    slot = {**body, "start_time": "2024-06-03T10:00:00Z", "end_time": "2024-06-03T11:00:00Z"}
    await keyed_post(
        api,
        {**slot, "start_time": "2024-06-03T07:00:00Z", "end_time": "2024-06-03T08:00:00Z"},
        "warm",
    )
    async with round_trips(engine) as sent:
        first = await keyed_post(api, slot, "k-fast")
    assert first.status_code == 201, first.text
    assert sent == ["SELECT", "WITH"]
    # The answer was stored by that one write, and is what a retry gets.
    [(status, stored)] = await stored_answers(database_urls["postgresql"], "k-fast")
    assert (status, json.loads(stored)) == (201, first.json())
    again = await keyed_post(api, slot, "k-fast")
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert await counts(database_urls["postgresql"], body["resource_id"]) == (3, 3, 3)


async def test_a_key_used_meanwhile_by_another_request_writes_nothing(
    api: Api, engine: AsyncEngine, database_urls: dict[str, str]
) -> None:
    body = await setup(api)
    app_id = (await api.get("/v1/app")).json()["app_id"]
    # Just before the write, another request with the key (another body) stores its answer.
    hook = changing_the_resource_before_the_write(
        database_urls["postgresql"],
        app_id,
        "INSERT INTO idempotency_keys (app_id, key, fingerprint, status_code, headers, body,"
        " created_at, expires_at) VALUES ($1, 'k-taken', repeat('0', 64), 201, '{}', '{}',"
        " now(), now() + interval '1 day')",
    )
    async with round_trips(engine, hook):
        r = await keyed_post(
            api,
            {**body, "start_time": "2024-06-03T10:00:00Z", "end_time": "2024-06-03T11:00:00Z"},
            "k-taken",
        )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "idempotency_key_reused"
    assert await counts(database_urls["postgresql"], body["resource_id"]) == (1, 1, 1)


async def test_a_keyed_create_on_a_resource_changed_meanwhile_commits_with_its_answer(
    api: Api, engine: AsyncEngine, database_urls: dict[str, str]
) -> None:
    body = await setup(api)
    hook = changing_the_resource_before_the_write(
        database_urls["postgresql"],
        body["resource_id"],
        "UPDATE resources SET name = name || ' (renamed)' WHERE id = $1",
    )
    slot = {**body, "start_time": "2024-06-03T10:00:00Z", "end_time": "2024-06-03T11:00:00Z"}
    async with round_trips(engine, hook) as sent:
        first = await keyed_post(api, slot, "k-changed")
    assert first.status_code == 201, first.text
    # The write wrote nothing; the create goes on the locked way, in a transaction whose read
    # takes the key and whose write stores the answer.
    assert sent == ["SELECT", "WITH", "SELECT", "BEGIN", "WITH", "COMMIT"]
    [(status, stored)] = await stored_answers(database_urls["postgresql"], "k-changed")
    assert (status, json.loads(stored)) == (201, first.json())
    assert await counts(database_urls["postgresql"], body["resource_id"]) == (2, 2, 2)


# A create refused by the exclusion constraint (the slot is taken) is told why from one more
# plain read, without a transaction or the resource's lock: under a storm of requests for one
# slot, every loser used to queue for that lock holding a pooled connection, and the last ones
# timed out waiting for a connection (503; docs/benchmarks.md).


async def test_a_refused_create_is_explained_without_a_lock(api: Api, engine: AsyncEngine) -> None:
    body = await setup(api)
    slot = {**body, "start_time": "2024-06-03T10:00:00Z", "end_time": "2024-06-03T11:00:00Z"}
    await api.book(**slot)
    async with round_trips(engine) as sent:
        r = await api.post("/v1/bookings", slot)
    assert (r.status_code, r.json()["code"]) == (409, "slot_unavailable"), r.text
    assert "already booked" in r.json()["detail"]
    assert sent == ["SELECT", "WITH", "SELECT"]
    block = await api.post(
        f"/v1/resources/{body['resource_id']}/blocks",
        {"start_time": "2024-06-03T12:00:00Z", "end_time": "2024-06-03T13:00:00Z"},
    )
    assert block.status_code == 201, block.text
    async with round_trips(engine) as sent:
        r = await api.post(
            "/v1/bookings",
            {**body, "start_time": "2024-06-03T12:30:00Z", "end_time": "2024-06-03T13:30:00Z"},
        )
    assert (r.status_code, r.json()["code"]) == (409, "slot_unavailable"), r.text
    assert "blocked" in r.json()["detail"]
    assert sent == ["SELECT", "WITH", "SELECT"]


async def test_an_overdue_payment_hold_in_the_way_is_timed_out_the_locked_way(
    api: Api, engine: AsyncEngine, database_urls: dict[str, str]
) -> None:
    body = await setup(api)
    slot = {**body, "start_time": "2024-06-03T10:00:00Z", "end_time": "2024-06-03T11:00:00Z"}
    held = await api.book(graph="instant_payment", **slot)
    api.clock.advance(timedelta(minutes=5))  # its payment is due now
    async with round_trips(engine) as sent:
        r = await api.post("/v1/bookings", slot)
    assert r.status_code == 201, r.text
    # Refused, and the plain read sees only an overdue hold: the locked way times it out.
    assert sent[:4] == ["SELECT", "WITH", "SELECT", "SELECT"], sent
    assert "BEGIN" in sent, sent
    got = (await api.get(f"/v1/bookings/{held['booking_id']}")).json()
    assert (got["status"], got["holds"]) == ("unpaid", False)
    assert await counts(database_urls["postgresql"], body["resource_id"]) == (3, 3, 4)
