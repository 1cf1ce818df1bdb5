"""Statements sent straight on asyncpg (db/driver_sql.py fetch_autocommit, execute_autocommit:
the optimistic create's read and write, ADR 0005), which SQLAlchemy's cursor events do not see.

Only the engine's own connections are instrumented, one by one, and only while they are checked
out inside the context: each is given a subclass of its class (asyncpg's connections have slots,
so an instance cannot carry a method of its own) whose `fetch` and `execute` report a call with
parameters to the hooks of the contexts holding it (BEGIN, COMMIT and ROLLBACK go through
`execute` without any; SQLAlchemy's own statements go through prepared statements, not these
methods). A connection gets its own class back when no context holds it any more: at checkin,
or when the context ends, whatever raised, in whatever order contexts end.
Before, asyncpg's class itself was patched while inside: every connection of the process, any
test's, in any thread, was hooked, and two contexts that overlapped restored each other's hooks.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

# Called with each statement's text just before it is sent; what it returns is awaited then.
Hook = Callable[[str], Awaitable[None] | None]


_HOOKS: dict[int, list[Hook]] = {}  # a hooked connection's id -> its contexts' hooks


async def _report(driver: Any, query: str) -> None:
    for hook in list(_HOOKS.get(id(driver), ())):
        pending = hook(query)
        if pending is not None:
            await pending


@functools.cache
def _reporting(base: type) -> type:
    """`base` with its `fetch` and `execute` reporting each call with parameters first, to the
    hooks of the contexts that hold the connection."""

    def reported(name: str) -> Any:
        sends = getattr(base, name)

        async def send(driver: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            if args:
                await _report(driver, query)
            return await sends(driver, query, *args, **kwargs)

        return send

    methods = {name: reported(name) for name in ("fetch", "execute")}
    return type(f"Reporting{base.__name__}", (base,), {"__slots__": (), **methods})


def _hook(driver: Any, on_statement: Hook) -> None:
    if id(driver) not in _HOOKS:
        driver.__class__ = _reporting(type(driver))
    _HOOKS.setdefault(id(driver), []).append(on_statement)


def _unhook(driver: Any, on_statement: Hook) -> None:
    hooks = _HOOKS.get(id(driver), [])
    if on_statement in hooks:
        hooks.remove(on_statement)
    if not hooks and _HOOKS.pop(id(driver), None) is not None:
        driver.__class__ = type(driver).__mro__[1]  # its own class again


@contextmanager
def asyncpg_statements(engine: AsyncEngine, on_statement: Hook) -> Iterator[None]:
    held: dict[int, Any] = {}  # the connections this context hooked, by id (kept alive)

    def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        driver = dbapi_conn.driver_connection
        if id(driver) not in held:
            held[id(driver)] = driver
            _hook(driver, on_statement)

    def checkin(dbapi_conn: Any, _record: Any) -> None:
        if dbapi_conn is not None and (driver := held.pop(id(dbapi_conn.driver_connection), None)):
            _unhook(driver, on_statement)

    event.listen(engine.sync_engine.pool, "checkout", checkout)
    event.listen(engine.sync_engine.pool, "checkin", checkin)
    try:
        yield
    finally:
        event.remove(engine.sync_engine.pool, "checkout", checkout)
        event.remove(engine.sync_engine.pool, "checkin", checkin)
        for driver in held.values():
            _unhook(driver, on_statement)


async def terminate_backend(url: str, pid: int) -> None:
    """Ends PostgreSQL backend `pid` from another connection (asyncpg's URL), and returns once it
    is gone (pg_terminate_backend waits up to 10 s for it)."""
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1, 10000)", pid) is True
    finally:
        await conn.close()
