"""The database's clock, as a worker keeps it: this process's clock plus the offset last measured
against PostgreSQL's.

A worker decides with its clock when a payment hold has timed out, a request has expired, a
booking is complete, a lease has run out and a reminder is due, against moments the API servers
wrote. A worker on a machine whose clock ran an hour ahead timed out, at once, holds that had
30 minutes left, and `/readyz` showed its heartbeat an hour in the future as healthy
(docs/operations.md, "Bad days"). Following the database's clock, every worker agrees with the
others and with the data, whatever its own machine says; the offset is measured when the worker
starts and with each round of timers, and said in a warning when it is a second or more.

SQLite has no server: every process that opens the file runs on its machine, on its clock.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("slotgraph.worker")

_SAID = timedelta(seconds=1)  # an offset this large is said (and again when it moves this much)


class DatabaseClock:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.offset = timedelta(0)
        self._said: timedelta | None = None

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    async def measure(self) -> int:
        """Measure the offset again (PostgreSQL); 0, for the worker's step guard."""
        if self.engine.dialect.name != "postgresql":
            return 0
        before = datetime.now(UTC)
        async with self.engine.connect() as conn:
            theirs: datetime = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()
        after = datetime.now(UTC)
        self.offset = theirs - (before + (after - before) / 2)
        far = abs(self.offset) >= _SAID
        if far and (self._said is None or abs(self.offset - self._said) >= _SAID):
            self._said = self.offset
            log.warning(
                "this machine's clock is %+.1f s off the database's; the worker keeps the "
                "database's time (set this machine's clock right: NTP)",
                -self.offset.total_seconds(),
            )
        elif not far and self._said is not None:
            self._said = None
            log.info("this machine's clock agrees with the database's again")
        return 0
