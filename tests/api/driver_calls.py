"""Statements sent straight on asyncpg (db/driver_sql.py fetch_autocommit, execute_autocommit:
the optimistic create's read and write, ADR 0005), which SQLAlchemy's cursor events do not see.

asyncpg's connections have slots, so its `fetch` and `execute` are hooked on the class while
inside, and only calls on the engine's pooled connections with parameters are reported (BEGIN,
COMMIT and ROLLBACK go through `execute` without any; SQLAlchemy's own statements go through
prepared statements, not these methods).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

# Called with each statement's text just before it is sent; what it returns is awaited then.
Hook = Callable[[str], Awaitable[None] | None]


@contextmanager
def asyncpg_statements(engine: AsyncEngine, on_statement: Hook) -> Iterator[None]:
    pooled: set[Any] = set()  # the engine's connections checked out (not a test's own)

    def hooked(sends: Any) -> Any:
        async def send(driver: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            if args and driver in pooled:
                pending = on_statement(query)
                if pending is not None:
                    await pending
            return await sends(driver, query, *args, **kwargs)

        return send

    def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        pooled.add(dbapi_conn.driver_connection)

    def checkin(dbapi_conn: Any, _record: Any) -> None:
        if dbapi_conn is not None:
            pooled.discard(dbapi_conn.driver_connection)

    sends = {name: getattr(asyncpg.Connection, name) for name in ("fetch", "execute")}
    for name, original in sends.items():
        setattr(asyncpg.Connection, name, hooked(original))
    event.listen(engine.sync_engine.pool, "checkout", checkout)
    event.listen(engine.sync_engine.pool, "checkin", checkin)
    try:
        yield
    finally:
        event.remove(engine.sync_engine.pool, "checkout", checkout)
        event.remove(engine.sync_engine.pool, "checkin", checkin)
        for name, original in sends.items():
            setattr(asyncpg.Connection, name, original)
