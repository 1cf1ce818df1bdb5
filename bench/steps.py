"""The worker's database steps without HTTP: CPU per delivery of the fan-out and the record.

`python -m bench.steps [--sqlite] [--events N] [--room R] [--record B]`: a fresh database with
one app, one webhook and N undispatched events (written directly: no API, no
booking, so the order rule's check per booking is not in the figures),
then in one process, as the worker runs them: fan-outs of up to R events, each born leasing
all its deliveries, until none is left; then the records of their successes, B at a time.
Prints each step's CPU per delivery, of this process (`time.process_time`) and of the
database's PostgreSQL backends (from /proc), which are all the work: no receiver, no sends;
on PostgreSQL also the rows each table took, and how many of its updates were HOT.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
from sqlalchemy import insert

from bench.drain import _backends
from bench.harness import cpu_ms, database
from slotgraph.db.engine import create_engine, session_factory
from slotgraph.db.migrate import migrate
from slotgraph.db.models import App, Event, WebhookEndpoint, new_id
from slotgraph.db.models.base import table_of
from slotgraph.domain.deliveries import Outcome
from slotgraph.services import deliveries, fanout
from slotgraph.services.deliveries import Claim

_PAYLOAD = orjson.dumps({"type": "booking.confirmed", "data": {"x": "y" * 1300}}).decode()


async def _setup(url: str, events: int) -> None:
    engine = create_engine(url)
    await migrate(engine)
    now = datetime.now(UTC) - timedelta(minutes=1)
    app_id = new_id()
    async with engine.begin() as conn:
        await conn.execute(insert(table_of(App)), [_app(app_id, now)])
        await conn.execute(
            insert(table_of(WebhookEndpoint)),
            [
                {
                    **{"id": new_id(), "app_id": app_id, "url": "http://127.0.0.1:9/x"},
                    **{"events": None, "format": "standard", "enabled": True, "version": 1},
                    **{"secret": "whsec_" + "A" * 32, "created_at": now, "updated_at": now},
                }
            ],
        )
        rows = [
            {
                **{"id": new_id(), "app_id": app_id, "type": "booking.confirmed"},
                **{"booking_id": None, "payload": _PAYLOAD, "created_at": now},
            }
            for _ in range(events)
        ]
        await conn.execute(insert(table_of(Event)), rows)
    await engine.dispose()


def _app(app_id: uuid.UUID, now: datetime) -> dict[str, object]:
    return {"id": app_id, "name": "bench", "created_at": now, "settings": {}}


async def _run(url: str, room: int, record: int, sqlite: bool) -> None:
    engine = create_engine(url)
    sessions = session_factory(engine)
    db = url.rsplit("/", 1)[1]
    claims: list[Claim] = []
    async with sessions() as session:  # warm: connections, statements
        await deliveries.claim(
            session, now=datetime.now(UTC), worker_id="w", lease=timedelta(minutes=5), limit=1
        )
    pids = [] if sqlite else await _backends(db)
    cpu, pg = time.process_time(), cpu_ms(pids)
    while True:
        now = datetime.now(UTC)
        lease = fanout.Lease("w", now + timedelta(minutes=5), room)
        async with sessions() as session:
            fanned = await fanout.dispatch(session, now=now, limit=room, lease=lease)
        if not fanned.events:
            break
        claims += fanned.claims
    fan_cpu, fan_pg = time.process_time() - cpu, cpu_ms(pids) - pg
    pids = [] if sqlite else await _backends(db)
    cpu, pg = time.process_time(), cpu_ms(pids)
    ok = Outcome(status_code=200, error=None, duration_ms=5, response_body=None)
    for i in range(0, len(claims), record):
        async with sessions() as session:
            await deliveries.finish(
                session,
                results=[(c, ok) for c in claims[i : i + record]],
                now=datetime.now(UTC),
                worker_id="w",
                jitter=lambda: 0.0,
            )
    rec_cpu, rec_pg = time.process_time() - cpu, cpu_ms(pids) - pg
    n = len(claims)
    print(
        f"{n} deliveries: fan-out (room {room}) {fan_cpu / n * 1e6:.0f}"
        f" + {fan_pg / n * 1e3:.0f} us,"
        f" record (batches of {record}) {rec_cpu / n * 1e6:.0f} + {rec_pg / n * 1e3:.0f} us"
        " per delivery (this process + PostgreSQL)"
    )
    if not sqlite:
        await engine.dispose()  # the backends report their counts as they end
        await asyncio.sleep(1.5)
        conn = await asyncpg.connect(url)
        try:
            for row in await conn.fetch(_WRITES):
                print("{}: {} inserted, {} updated, {} of them HOT".format(*row))
        finally:
            await conn.close()
    await engine.dispose()


# What the steps wrote, per table: a HOT update writes no index entry
_WRITES = """
SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
WHERE relname IN ('events', 'deliveries', 'delivery_attempts') ORDER BY relname
"""


async def main(*, sqlite: bool, events: int, room: int, record: int) -> None:
    async with database(sqlite) as url:
        await _setup(url, events)
        await _run(url, room, record, sqlite)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--room", type=int, default=140)
    parser.add_argument("--record", type=int, default=24)
    args = parser.parse_args()
    asyncio.run(main(sqlite=args.sqlite, events=args.events, room=args.room, record=args.record))
