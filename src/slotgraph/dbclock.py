"""The database's clock, as every slotgraph process keeps it: this process's clock plus the offset
last measured against PostgreSQL's (ADR 0019).

The API writes moments (a payment hold's deadline, a request's expiry, a lease, an idempotency
key's end) and the worker acts on them (times the hold out, expires the request); reads apply the
due ones too. Each compared its own machine's clock with moments another machine wrote: a worker
an hour ahead timed out, at once, holds that had 30 minutes left, and an API server an hour
behind wrote deadlines already past by the worker's time (docs/operations.md, "Bad days"). On
the database's clock every process agrees with the others and with the data, whatever its own
machine says; the offset is measured when the process starts, then with each round of a
worker's timers, or every `MEASURE_EVERY` s in a server without a worker, and said in a warning
when it is a second or more.

SQLite has no server: every process that opens the file runs on its machine, on its clock.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("slotgraph.clock")

_SAID = timedelta(seconds=1)  # an offset this large is said (and again when it moves this much)
MEASURE_EVERY = 5.0  # seconds, in a server without a worker (a worker: each round of timers)


class DatabaseClock:
    def __init__(self, engine: AsyncEngine | None = None) -> None:
        self.engine = engine  # None until a server's start gives it one: this machine's time
        self.offset = timedelta(0)
        self._said: timedelta | None = None

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    async def measure(self) -> int:
        """Measure the offset again (PostgreSQL); 0, for the worker's step guard. The offset is
        off by at most half the round trip of one `SELECT clock_timestamp()`."""
        if self.engine is None or self.engine.dialect.name != "postgresql":
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
                "this machine's clock is %+.1f s off the database's; slotgraph keeps the "
                "database's time (set this machine's clock right: NTP)",
                -self.offset.total_seconds(),
            )
        elif not far and self._said is not None:
            self._said = None
            log.info("this machine's clock agrees with the database's again")
        return 0

    async def keep(self, every: float = MEASURE_EVERY) -> None:
        """Measure every `every` s until cancelled (a server without a worker); a database that
        does not answer leaves the last offset."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.measure()
            except Exception:  # an outage: requests say it; the clock keeps its offset
                log.debug("the database's clock could not be measured", exc_info=True)
