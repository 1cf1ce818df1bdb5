"""A block's hold is found by its key (`ix_booking_holds_block`, migration 0020), on both
backends: deleting a block, or a sync's moved and deleted events, switch off the holds of given
blocks, and without the index each did it by reading every hold of every app. `statements`
and `plan` serve tests/api/calendars/test_disconnect_blocks.py too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import Api


@contextmanager
def statements(engine: AsyncEngine, starting: str) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and their parameters) sent while inside that start with `starting`."""
    seen: list[tuple[str, Any]] = []

    def sent(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(starting):
            seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", sent)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", sent)


async def plan(engine: AsyncEngine, statement: str, parameters: Any) -> str:
    """How the database would run the statement, as text. PostgreSQL is told to avoid scans
    where it has any other way (on a table this small a scan is cheapest): without an index
    on the column it scans all the same."""
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            rows = await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
            found = "\n".join(str(r[0]) for r in rows)
        else:
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            found = "\n".join(str(r[-1]) for r in rows)
        await conn.rollback()
    return found


async def test_deleting_a_block_finds_its_hold_by_key(api: Api, engine: AsyncEngine) -> None:
    resource = await api.resource(timezone="UTC")
    path = f"/v1/resources/{resource['resource_id']}/blocks"
    r = await api.post(
        path, {"start_time": "2024-05-02T12:00:00Z", "end_time": "2024-05-02T13:00:00Z"}
    )
    assert r.status_code == 201, r.text
    with statements(engine, "UPDATE BOOKING_HOLDS") as seen:
        assert (await api.delete(f"{path}/{r.json()['block_id']}")).status_code == 204
    assert len(seen) == 1, seen
    how = await plan(engine, *seen[0])
    assert "ix_booking_holds_block" in how, how
    free = await api.get(
        f"/v1/resources/{resource['resource_id']}/freebusy",
        start="2024-05-02T00:00:00Z",
        end="2024-05-03T00:00:00Z",
    )
    assert free.json()["busy"] == []
