"""What counting a customer email per inbox costs the worker (services/email_quota.py `take`,
ADR 0020): CPU of this process a transaction that does `SELECT 1` and takes one email, against
one that does `SELECT 1` only, alternating, 50 inboxes at the default limit of 20. On a migrated
database (`slotgraph migrate` first):
`python -m bench.email_quota sqlite:////tmp/q.db [--rounds N]`, or a PostgreSQL URL.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from slotgraph.db.engine import create_engine, session_factory
from slotgraph.services import email_quota


async def _run(url: str, rounds: int) -> None:
    logging.disable(logging.WARNING)  # the once-a-window lines of inboxes past the limit
    engine = create_engine(url)
    sessions = session_factory(engine)
    app = uuid.uuid4()
    now = datetime(2030, 1, 1, tzinfo=UTC)
    for limit, label in ((20, "SELECT 1 + take"), (0, "SELECT 1 only")) * 2:
        started = time.process_time()
        for i in range(rounds):
            async with sessions() as session, session.begin():
                await session.execute(text("SELECT 1"))
                await email_quota.take(
                    session,
                    app_id=app,
                    address=f"c{i % 50}@example.com",
                    delivery_id=uuid.uuid4(),
                    now=now + timedelta(seconds=i),
                    limit=limit,
                )
        used = (time.process_time() - started) / rounds * 1e6
        print(f"{label}: {used:.0f} us of CPU a transaction", flush=True)
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--rounds", type=int, default=1500)
    args = parser.parse_args()
    asyncio.run(_run(args.url, args.rounds))


if __name__ == "__main__":
    main()
