"""What emptying the tables between tests costs on PostgreSQL (tests/conftest.py `clean`): a
DELETE per table, as the suite does, against one TRUNCATE of them all, in the CPU of this
process and of the PostgreSQL backend that runs it, and in wall time (docs/testing.md,
"Between tests on PostgreSQL"). On a fresh, migrated database of its own, dropped after:
`python -m bench.clean_cost --postgres postgresql://postgres@127.0.0.1:5432/test [--rounds N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from slotgraph.db.engine import create_engine
from slotgraph.db.migrate import migrate
from slotgraph.db.models import Base

TABLES = [table.name for table in reversed(Base.metadata.sorted_tables)]  # as tests/conftest.py
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    """A process's CPU (user + sys) so far, in seconds (the backend: /proc, same machine)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


async def _delete(conn: AsyncConnection) -> None:
    for table in TABLES:
        await conn.exec_driver_sql(f"DELETE FROM {table}")


async def _delete_one_trip(conn: AsyncConnection) -> None:
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    await driver.execute("; ".join(f"DELETE FROM {table}" for table in TABLES))


async def _truncate(conn: AsyncConnection) -> None:
    await conn.exec_driver_sql("TRUNCATE " + ", ".join(TABLES))


async def main(admin_url: str, rounds: int) -> None:
    name = f"slotgraph_clean_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    engine = create_engine(make_url(admin_url).set(database=name).render_as_string(False))
    try:
        await migrate(engine)
        ways: dict[str, Callable[[AsyncConnection], Awaitable[None]]] = {
            "delete": _delete,
            "delete-1": _delete_one_trip,
            "truncate": _truncate,
        }
        for _ in range(2):  # alternating
            for way, clean in ways.items():
                async with engine.connect() as conn:
                    pid = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()
                    await conn.commit()
                    ours, theirs, wall = time.process_time(), _cpu(pid), time.monotonic()
                    for _ in range(rounds):
                        await clean(conn)
                        await conn.commit()
                    ours, theirs = time.process_time() - ours, _cpu(pid) - theirs
                    wall = time.monotonic() - wall
                print(
                    f"{way:8} a clean: this process {1000 * ours / rounds:.2f} ms, "
                    f"PostgreSQL {1000 * theirs / rounds:.2f} ms of CPU, "
                    f"wall {1000 * wall / rounds:.1f} ms ({rounds} rounds)"
                )
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", required=True, help="an admin URL of the server")
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.postgres, args.rounds))
