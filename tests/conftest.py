"""Shared test fixtures: databases on both backends, built with the real migrations."""

from __future__ import annotations

import gc
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import fastapi.dependencies.models as fastapi_models
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from xdist.scheduler import LoadScopeScheduling

from slotgraph.db.engine import create_engine
from slotgraph.db.migrate import migrate
from slotgraph.db.models import Base

# Emails of tests that configure no SMTP server go to a throwaway directory, never ./data/mail.
os.environ.setdefault("SLOTGRAPH_MAIL_DIR", tempfile.mkdtemp(prefix="slotgraph-test-mail-"))

BACKENDS = ["sqlite", "postgresql"]


def pytest_sessionfinish() -> None:
    """Spare the exit a collection of the whole heap (8 minutes of a 58-minute run when the
    process ended at 2.5 GB; _FASTAPI_CALLABLE_CACHES says why it grew). Frozen objects are still
    freed by their reference counts; only the cycle search skips them. Results are untouched."""
    gc.freeze()


# FastAPI remembers, in three bounded caches of 4,096 entries each, whether each endpoint and
# dependency is a coroutine or a generator (about 34 new entries per app). Two of those callables
# were closures over their app (FastAPIOffline's /docs and /redoc pages; api/reference.py's are
# module functions since 2026-12-01), so every app a test made stayed reachable: about 14,000
# objects and 2.4 MB a test, 2.5 GB by the suite's end, and ever longer garbage collections. A
# server process makes one app; a test makes one or more. Kept: it costs nothing.
_FASTAPI_CALLABLE_CACHES = (
    fastapi_models._is_gen_callable_cached,
    fastapi_models._is_async_gen_callable_cached,
    fastapi_models._is_coroutine_callable_cached,
)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown() -> None:
    """Let the apps of the test that just ended go (_FASTAPI_CALLABLE_CACHES)."""
    for cache in _FASTAPI_CALLABLE_CACHES:
        cache.cache_clear()


# -- pytest-xdist: `make test` runs `pytest -n auto` (docs/testing.md) ----------------------------
# A module's tests go to one worker together, in the order collected, so a fixture it shares (the
# system tests' server processes, the Timekit servers) starts once; so do a package's, for each
# package whose fixtures are package-scoped (the browser tests' chromium and servers). Session
# fixtures (the test databases, Radicale) are made by each worker: their names and ports are its
# own. xdist's own `--dist loadgroup` cannot do this with pytest 9 (it renames node ids).
SHARED_PACKAGES = ("tests/browser",)
# What a worker should start first, so that the short in-process tests fill in the end: a server
# test or a schemathesis run scheduled last would be the run's tail.
FIRST, THEN = ("system", "browser", "npm"), ("slow",)


class ByModule(LoadScopeScheduling):
    """xdist's `loadscope`, by module (or SHARED_PACKAGES package), units in collected order."""

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return next((p for p in SHARED_PACKAGES if module.startswith(p + "/")), module)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> ByModule:
    config.option.loadscopereorder = False  # keep the order below, not "most tests first"
    return ByModule(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A package-scoped fixture only in SHARED_PACKAGES; under xdist, long tests first."""
    for item in items:
        for defs in item._fixtureinfo.name2fixturedefs.values():
            if defs and defs[-1].scope == "package" and defs[-1].baseid not in SHARED_PACKAGES:
                raise pytest.UsageError(
                    f"{item.nodeid}: the package-scoped fixture {defs[-1].argname} is in "
                    f"{defs[-1].baseid!r}: add that package to SHARED_PACKAGES in tests/conftest.py"
                )
    if not _postgres_wanted():
        on_postgres = [item for item in items if _on_postgres(item)]
        if on_postgres:
            config.stash[_LEFT_OUT] = len(on_postgres)
            config.hook.pytest_deselected(items=on_postgres)
            items[:] = [item for item in items if not _on_postgres(item)]
    if hasattr(config, "workerinput"):  # an xdist worker (all of them sort alike)
        items.sort(key=_long_first)


# Without SLOTGRAPH_TEST_POSTGRES_URL (outside CI) the PostgreSQL half of the suite is left out
# at collection, and the run's summary says so once: skipped one by one, they were some 300 lines of
# the same reason at the end of a newcomer's `make test-quick`.
_NO_POSTGRES = (
    "SLOTGRAPH_TEST_POSTGRES_URL is not set: the tests on PostgreSQL are left out (deselected); "
    "set it (e.g. postgresql://postgres@127.0.0.1:5432/test) to run them"
)


def _postgres_wanted() -> bool:
    return bool(os.environ.get("SLOTGRAPH_TEST_POSTGRES_URL") or os.environ.get("CI"))


def _on_postgres(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "postgresql" in callspec.params.values()


_LEFT_OUT = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Said when PostgreSQL cases were left out here, or may have been by xdist's workers
    (whose collections the controller does not see)."""
    controller = bool(getattr(config.option, "numprocesses", None))
    if not _postgres_wanted() and (config.stash.get(_LEFT_OUT, 0) or controller):
        terminalreporter.write_line(_NO_POSTGRES, yellow=True)


def _long_first(item: pytest.Item) -> int:
    if any(item.get_closest_marker(m) for m in FIRST):
        return 0
    return 1 if any(item.get_closest_marker(m) for m in THEN) else 2


# Children before parents, from the models: a new table is cleaned without being listed here.
TABLES = [table.name for table in reversed(Base.metadata.sorted_tables)]


def postgres_url() -> str:
    """The admin URL of the test PostgreSQL; in CI its absence fails the run, never skips."""
    url = os.environ.get("SLOTGRAPH_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("SLOTGRAPH_TEST_POSTGRES_URL is not set; CI must test on PostgreSQL")
        pytest.skip("SLOTGRAPH_TEST_POSTGRES_URL is not set")
    return url


async def create_postgres_database(prefix: str = "slotgraph_test") -> str:
    """A fresh, empty database on the test server; returns its URL."""
    admin = make_url(postgres_url())
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(postgres_url())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin.set(database=name).render_as_string(hide_password=False)


async def drop_postgres_database(url: str) -> None:
    target = make_url(url)
    conn = await asyncpg.connect(postgres_url())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def database_urls(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, str]]:
    """One database per backend for the session, created lazily."""
    urls: dict[str, str] = {}
    yield urls
    for backend, url in urls.items():
        if backend == "postgresql":
            await drop_postgres_database(url)


@pytest.fixture(scope="session")
async def _engines(database_urls: dict[str, str]) -> AsyncIterator[dict[str, AsyncEngine]]:
    """The session's engine per backend, each made (and migrated) by the first test to ask;
    disposed of before `database_urls` drops the databases."""
    made: dict[str, AsyncEngine] = {}
    yield made
    for eng in made.values():
        await eng.dispose()


@pytest.fixture(params=BACKENDS)
async def engine(
    request: pytest.FixtureRequest,
    database_urls: dict[str, str],
    _engines: dict[str, AsyncEngine],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncEngine:
    """The session's database on each backend. The parameter is per test, and both engines live
    for the whole session: with a session-scoped parameter, pytest tears the engine down and
    migrates a new database each time the backend changes, which an xdist worker running whole
    modules (each on both backends) does at every module."""
    backend: str = request.param
    if backend not in _engines:
        if backend == "sqlite":
            path: Path = tmp_path_factory.mktemp("sqlite") / "slotgraph.db"
            url = f"sqlite:///{path}"
        else:
            url = await create_postgres_database()
        database_urls[backend] = url
        eng = create_engine(url)
        await migrate(eng)
        _engines[backend] = eng
    return _engines[backend]


async def clean(engine: AsyncEngine) -> None:
    """Every table emptied, in one transaction. DELETE, not TRUNCATE: on PostgreSQL one TRUNCATE
    of all the tables cost the server 28-86 ms of CPU a test against under 1 ms, and a selection
    of the suite about a quarter more CPU in all, the dead rows DELETE leaves included
    (docs/testing.md, "Between tests on PostgreSQL"; tests/api/test_clean.py)."""
    async with engine.begin() as conn:
        for table in TABLES:
            await conn.exec_driver_sql(f"DELETE FROM {table}")
