"""Writing a booking hold: what the block trigger of ADR 0007 costs (PostgreSQL).

Server time per booking hold written, measured inside PostgreSQL (`clock_timestamp()` around a
loop of single-row INSERTs, after locking the resource row as the create path does), so that
round trips and the client's scheduling on a busy machine do not drown the trigger's cost. Rounds
alternate between the trigger enabled (the product) and disabled (the baseline), on a resource
with 1,000 blocks and 20,000 booking holds in the past, so the trigger's index probe has
something to search and the planner sees a table shaped like a live one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy.engine import make_url

from bench.availability import _HOLDS_OF_NEW_BOOKINGS
from bench.harness import Figure, database
from bench.rows import APPS, BOOKING_HOLDS, BOOKINGS, RESOURCE_BLOCKS, RESOURCES, insert_sql
from slotgraph.db.engine import create_engine
from slotgraph.db.migrate import migrate

T0 = datetime(2030, 1, 1, tzinfo=UTC)
_LOOP = """
CREATE FUNCTION pg_temp.write_holds(res uuid, ids uuid[], t0 timestamptz) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE
    began timestamptz := clock_timestamp();
BEGIN
    FOR i IN 1..array_length(ids, 1) LOOP
        INSERT INTO booking_holds (id, booking_id, resource_id, start_time, end_time, active)
        VALUES (gen_random_uuid(), ids[i], res, t0 + (i - 1) * interval '1 hour',
                t0 + i * interval '1 hour', true);
    END LOOP;
    RETURN extract(epoch FROM clock_timestamp() - began) * 1e6 / array_length(ids, 1);
END
$$
"""


async def _round(
    conn: asyncpg.Connection, resource: uuid.UUID, ids: list[uuid.UUID], k: int
) -> float:
    """Microseconds of server time per hold written (the k-th hour onwards)."""
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM resources WHERE id = $1 FOR NO KEY UPDATE", resource)
        took = await conn.fetchval(
            "SELECT pg_temp.write_holds($1, $2, $3)", resource, ids, T0 + timedelta(hours=k)
        )
    return float(took)


async def run(*, sqlite: bool, quick: bool) -> list[Figure]:
    if sqlite:
        raise SystemExit("the holds benchmark measures the PostgreSQL trigger; drop --sqlite")
    rounds, per_round = (3, 300) if quick else (7, 1000)
    async with database(False) as url:
        engine = create_engine(url)
        await migrate(engine)
        await engine.dispose()
        conn = await asyncpg.connect(
            make_url(url).set(drivername="postgresql").render_as_string(False)
        )
        try:
            app, resource = uuid.uuid4(), uuid.uuid4()
            await conn.execute(
                insert_sql(APPS, {"id": "$1", "name": "'bench'", "created_at": "now()"}), app
            )
            await conn.execute(
                insert_sql(
                    RESOURCES,
                    {
                        "id": "$1",
                        "app_id": "$2",
                        "name": "'r'",
                        "timezone": "'UTC'",
                        "created_at": "now()",
                        "updated_at": "now()",
                    },
                ),
                resource,
                app,
            )
            blocks = [
                (uuid.uuid4(), T0 - timedelta(days=2000) + timedelta(days=d)) for d in range(1000)
            ]
            await conn.executemany(
                insert_sql(
                    RESOURCE_BLOCKS,
                    {
                        "id": "$1",
                        "app_id": "$2",
                        "resource_id": "$3",
                        "start_time": "$4",
                        "end_time": "$5",
                        "created_at": "now()",
                    },
                ),
                [(b, app, resource, s, s + timedelta(hours=2)) for b, s in blocks],
            )
            await conn.executemany(
                insert_sql(
                    BOOKING_HOLDS,
                    {
                        "id": "$1",
                        "block_id": "$2",
                        "resource_id": "$3",
                        "start_time": "$4",
                        "end_time": "$5",
                        "active": "true",
                    },
                ),
                [(uuid.uuid4(), b, resource, s, s + timedelta(hours=2)) for b, s in blocks],
            )
            # A history of 20,000 past bookings that hold their time, so the table's statistics
            # look like a live database's (a few blocks among many booking holds) when ANALYZE
            # runs; with blocks alone, the planner reads the table by a sequential scan.
            await conn.execute(
                insert_sql(
                    BOOKINGS,
                    {
                        "app_id": "$1",
                        "graph": "'instant'",
                        "status": "'completed'",
                        "resource_id": "$2",
                        "start_time": "$3::timestamptz - g * interval '1 hour'",
                        "end_time": "$3::timestamptz - (g - 1) * interval '1 hour'",
                        "created_at": "now()",
                        "updated_at": "now()",
                    },
                    "FROM generate_series(1, 20000) AS g",
                ),
                app,
                resource,
                T0 - timedelta(days=3000),
            )
            await conn.execute(_HOLDS_OF_NEW_BOOKINGS, resource)
            ids = [uuid.uuid4() for _ in range(2 * rounds * per_round)]
            await conn.executemany(
                insert_sql(
                    BOOKINGS,
                    {
                        "id": "$1",
                        "app_id": "$2",
                        "graph": "'instant'",
                        "status": "'confirmed'",
                        "resource_id": "$3",
                        "start_time": "now()",
                        "end_time": "now() + interval '1 hour'",
                        "created_at": "now()",
                        "updated_at": "now()",
                    },
                ),
                [(i, app, resource) for i in ids],
            )
            await conn.execute("ANALYZE")
            await conn.execute(_LOOP)
            with_trigger, without = [], []
            for r in range(rounds):
                for enabled, out in ((True, with_trigger), (False, without)):
                    verb = "ENABLE" if enabled else "DISABLE"
                    await conn.execute(
                        f"ALTER TABLE booking_holds {verb} TRIGGER booking_holds_busy_time"
                    )
                    n = (2 * r + (0 if enabled else 1)) * per_round
                    out.append(await _round(conn, resource, ids[n : n + per_round], n))
            await conn.execute("ALTER TABLE booking_holds ENABLE TRIGGER booking_holds_busy_time")
        finally:
            await conn.close()
    ratios = [a / b for a, b in zip(with_trigger, without, strict=True)]
    return [
        Figure("hold write, trigger disabled (baseline)", without, "us"),
        Figure("hold write, with the block trigger", with_trigger, "us"),
        Figure("with / without (per round)", ratios, "x"),
    ]
