"""Shared test fixtures: databases on both backends, built with the real migrations."""

from __future__ import annotations

import gc
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.engine import create_engine
from slotgraph.db.migrate import migrate
from slotgraph.db.models import Base

# Emails of tests that configure no SMTP server go to a throwaway directory, never ./data/mail.
os.environ.setdefault("SLOTGRAPH_MAIL_DIR", tempfile.mkdtemp(prefix="slotgraph-test-mail-"))

BACKENDS = ["sqlite", "postgresql"]


def pytest_sessionfinish() -> None:
    """Spare the exit a collection of the whole heap: the full suite's process ends at about
    2.5 GB, and the interpreter's final garbage collections over it took 8 minutes of a 58-minute
    run after the summary was printed (at load 12-15). Frozen objects are still freed by their
    reference counts; only the cycle search skips them. Tests and their results are untouched."""
    gc.freeze()


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


@pytest.fixture(scope="session", params=BACKENDS)
async def engine(
    request: pytest.FixtureRequest,
    database_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[AsyncEngine]:
    backend: str = request.param
    if backend == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "slotgraph.db"
        url = f"sqlite:///{path}"
    else:
        url = await create_postgres_database()
    database_urls[backend] = url
    eng = create_engine(url)
    await migrate(eng)
    yield eng
    await eng.dispose()


async def clean(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for table in TABLES:
            await conn.exec_driver_sql(f"DELETE FROM {table}")
