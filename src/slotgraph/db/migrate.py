"""Run Alembic migrations on an async engine (alembic's connection-sharing recipe)."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _go(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    current = MigrationContext.configure(connection).get_current_revision()
    script = ScriptDirectory.from_config(cfg)
    target = script.get_revision(revision)
    ahead = (
        current is not None
        and target is not None
        and not any(
            r.revision == current for r in script.iterate_revisions(target.revision, "base")
        )
    )
    if ahead:  # the database is newer than `revision`: step down to it
        command.downgrade(cfg, revision)
    else:
        command.upgrade(cfg, revision)


@functools.cache
def head_revision() -> str | None:
    """The newest migration this code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's migration (None: never migrated)."""

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision` (up, or down if the database is ahead of it)."""
    async with engine.begin() as conn:
        await conn.run_sync(_go, revision)
