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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("slotgraph.clock")

_SAID = timedelta(seconds=1)  # an offset this large is said (and again when it moves this much)
MEASURE_EVERY = 5.0  # seconds, in a server without a worker (a worker: each round of timers)


def _machine_now() -> datetime:
    return datetime.now(UTC)


class DatabaseClock:
    def __init__(
        self,
        engine: AsyncEngine | None = None,
        *,
        machine: Callable[[], datetime] = _machine_now,
    ) -> None:
        self.engine = engine  # None until a server's start gives it one: this machine's time
        self.machine = machine  # this machine's clock
        self.offset = timedelta(0)
        self._said: timedelta | None = None
        self._latest = datetime.min.replace(tzinfo=UTC)  # the latest time given

    def __call__(self) -> datetime:
        """The database's time, never earlier than a time already given by less than `_SAID`:
        a measurement's noise (half a round trip) or this machine's clock stepped back would
        otherwise date a change before the one made just before it (a booking's history is in
        its changes' order by time). A step back of `_SAID` or more (a clock set right after it
        ran ahead) is taken at once, not waited out."""
        now = self.machine() + self.offset
        if timedelta(0) < self._latest - now < _SAID:
            return self._latest
        self._latest = now
        return now

    async def measure(self) -> int:
        """Measure the offset again (PostgreSQL); 0, for the worker's step guard. The offset is
        off by at most half the round trip of one `SELECT clock_timestamp()`: timed once the
        connection is taken and its transaction begun, since a wait for a pooled connection (up
        to `db_pool_timeout_seconds` when all are busy) counted in it made the offset wrong by
        half the wait."""
        if self.engine is None or self.engine.dialect.name != "postgresql":
            return 0
        now = text("SELECT clock_timestamp()")
        async with self.engine.connect() as conn:
            await conn.execute(now)  # BEGIN and the statement's preparation: not timed
            before = self.machine()
            theirs: datetime = (await conn.execute(now)).scalar_one()
            after = self.machine()
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
