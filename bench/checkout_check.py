"""What the pool's checkout check costs (db/engine.py `_replace_if_closed`: a connection the
database has closed is replaced before it is handed out): `python -m bench.checkout_check
[--postgres URL] [--rounds N] [--n N]`. In one process, on one engine, rounds alternate with the
check on and off (on, off, off, on, ...; SQLAlchemy runs its checkout loop only when a listener
is there, so "off" is the engine as it was). Each round times, in process CPU, N checkouts alone
(raw_connection and its close, in SQLAlchemy's greenlet) and N `driver_fetch(SELECT 1)` (the
availability search's whole way to the database); the figures are the medians per call
(docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from slotgraph.db.engine import _replace_if_closed, create_engine, driver_fetch


def _checkouts(engine: AsyncEngine, n: int) -> None:
    sync = engine.sync_engine
    for _ in range(n):
        sync.raw_connection().close()


async def _round(engine: AsyncEngine, n: int) -> tuple[float, float]:
    """Microseconds of CPU a checkout, and a driver_fetch, in this round."""
    start = time.process_time()
    await greenlet_spawn(_checkouts, engine, n)
    checkout = (time.process_time() - start) / n * 1e6
    start = time.process_time()
    for _ in range(n):
        await driver_fetch(engine, "SELECT 1")
    fetch = (time.process_time() - start) / n * 1e6
    return checkout, fetch


async def main(url: str, rounds: int, n: int) -> None:
    engine = create_engine(url)
    listened = engine.sync_engine
    try:
        await _round(engine, n)  # warm: the pool's connection, the statement's preparation
        figures: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for i in range(rounds * 2):
            on = i % 4 in (0, 3)  # on, off, off, on, ...: neither always goes first
            if on != event.contains(listened, "checkout", _replace_if_closed):
                (event.listen if on else event.remove)(listened, "checkout", _replace_if_closed)
            figures[on].append(await _round(engine, n))
        for on in (False, True):
            checkout = statistics.median(c for c, _ in figures[on])
            fetch = statistics.median(f for _, f in figures[on])
            print(
                f"check {'on ' if on else 'off'}: checkout {checkout:.2f} us, "
                f"driver_fetch {fetch:.2f} us (CPU, median of {rounds} rounds of {n})"
            )
    finally:
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "SLOTGRAPH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test"
        ),
    )
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    asyncio.run(main(args.postgres, args.rounds, args.n))
