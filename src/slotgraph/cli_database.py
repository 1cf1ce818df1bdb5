"""What the commands say about the database they work on: which one it is (`where`), that it is
there and migrated (`require_database`), and a migration that could not finish (`migrate`), each
a message that names the database and what to do instead of a traceback. Split from
cli_commands.py, which runs the commands; like it, everything heavy is imported in the function
that needs it (`slotgraph --help` imports none of it)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from slotgraph.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


def where(settings: Settings) -> str:
    """The database, as a person would look for it (no password)."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return f"the SQLite file {Path(url.database or '').resolve()}"
    return f"the PostgreSQL database {url.render_as_string(hide_password=True)}"


def require_database(settings: Settings, *, migrated: bool = True) -> None:
    """Commands that work on data never create a database: they say which one they looked for,
    and what to do when it is missing or not migrated, instead of a traceback."""
    from pathlib import Path

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from slotgraph.cli_commands import run
    from slotgraph.db.migrate import head_revision
    from slotgraph.errors import DatabaseUnavailable
    from slotgraph.settings import DEFAULT_DATABASE_URL

    url = make_url(settings.database_url)
    configured = "SLOTGRAPH_DATABASE_URL" in os.environ
    how = (
        "SLOTGRAPH_DATABASE_URL says so"
        if configured
        else f"SLOTGRAPH_DATABASE_URL is not set, so the default {DEFAULT_DATABASE_URL} is "
        f"taken in the current folder ({Path.cwd()})"
    )
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise SystemExit(
            f"slotgraph: there is no database at {where(settings)} ({how}).\n"
            "Run the command in the folder where `slotgraph serve` keeps its data, or set "
            "SLOTGRAPH_DATABASE_URL to the database to use (sqlite:////absolute/path/slotgraph.db "
            "or postgresql://...). `slotgraph migrate` creates a new one."
        )
    try:
        revision = run(_revision(settings))
    except (DatabaseUnavailable, DBAPIError, OSError) as exc:
        reason = exc.__cause__ or exc
        raise SystemExit(
            f"slotgraph: cannot open {where(settings)} ({how}): {reason}\n"
            "Check that it exists and that this machine may connect to it."
        ) from None
    if migrated and revision != head_revision():
        state = f"at migration {revision}" if revision else "empty (never migrated)"
        raise SystemExit(
            f"slotgraph: {where(settings)} is {state}; this version needs {head_revision()}.\n"
            "Run `slotgraph migrate` with the same SLOTGRAPH_DATABASE_URL first."
        )


async def _revision(settings: Settings) -> str | None:
    from slotgraph.db.engine import create_engine
    from slotgraph.db.migrate import current_revision

    engine = create_engine(settings.database_url, settings)
    try:
        return await current_revision(engine)
    finally:
        await engine.dispose()


async def migrate(engine: AsyncEngine, settings: Settings) -> None:
    """Migrate (`migrate`, `serve` and `worker` do first). A lock that another session holds on
    a table a migration changes, past the lock timeout, or a statement cancelled (the role's
    statement_timeout) is a message naming the database and what to do, not a traceback: all
    migrations are one transaction, so nothing was changed."""
    from slotgraph.db.engine import SQLITE_WAIT_SECONDS
    from slotgraph.db.migrate import migrate
    from slotgraph.errors import DatabaseBusy

    try:
        await migrate(engine)
    except DatabaseBusy as exc:
        if _cancelled(exc):  # 57014: the role's statement_timeout, or pg_cancel_backend
            what = "was cancelled by PostgreSQL (the role's statement_timeout, or an operator)"
            then = "with a role or session whose statement_timeout allows it"
        elif engine.dialect.name == "postgresql":
            what = (
                f"waited {settings.db_lock_timeout_seconds:g} s (SLOTGRAPH_DB_LOCK_TIMEOUT_"
                "SECONDS) for a lock another session holds on one of its tables (a long "
                "transaction, a pg_dump, a session idle in transaction: see pg_stat_activity)"
            )
            then = "once it ends, or with a larger SLOTGRAPH_DB_LOCK_TIMEOUT_SECONDS"
        else:
            what = f"waited {SQLITE_WAIT_SECONDS} s for another process to let go of the write lock"
            then = "once that process is done"
        raise SystemExit(
            f"slotgraph: the migration of {where(settings)} {what}; nothing was changed. "
            f"Run it again {then}."
        ) from None


def _cancelled(exc: BaseException) -> bool:
    """Whether the driver's error under `exc` is PostgreSQL's query_canceled (57014)."""
    cause: BaseException | None = exc
    while cause is not None and getattr(cause, "sqlstate", None) != "57014":
        cause = cause.__cause__ or cause.__context__
    return cause is not None
