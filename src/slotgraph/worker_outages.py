"""How the worker says a database outage: each kind once (again each minute while it lasts),
and its end once. The worker (worker.py) runs every step of its loops through `Outages.guarded`,
which keeps a failing step from ending the loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

from slotgraph.db.engine import is_unavailable, outage

log = logging.getLogger("slotgraph.worker")

# Each kind again after this long while it lasts; over once no step has failed for this long.
_SAY_AGAIN = 60.0
_BACK_AFTER = 10.0


class Outages:
    """An outage is said once (again after `_SAY_AGAIN` s while it lasts), and its end once no
    step has failed for `_BACK_AFTER` s: a database that serves reads but refuses writes (full,
    read-only) failed some steps and passed others, and each pass said "back" and the next
    failure "unavailable" again (340 lines in 40 s). Each kind of outage (a lock wait, a
    statement timeout, unreachable: `outage`) is said when it first fails a step, and again
    after `_SAY_AGAIN` s."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self._unavailable = False
        self._said: dict[str, float] = {}
        self._failed_at = 0.0

    async def guarded(self, step: Awaitable[int]) -> int:
        """Run one step of a loop; a database blip (or any error) is logged and 0 returned, so
        the loop goes on."""
        try:
            done = await step
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_unavailable(exc):
                self._failed_at = now = time.monotonic()
                kind, said = outage(exc)  # a lock wait, a statement timeout, unreachable, ...
                if now - self._said.get(kind, -_SAY_AGAIN) >= _SAY_AGAIN:
                    log.warning("worker %s: %s (%s); retrying", self.worker_id, kind, said)
                    self._said[kind] = now
                self._unavailable = True
            else:
                log.exception("worker cycle failed; retrying")
            return 0
        if self._unavailable and time.monotonic() - self._failed_at >= _BACK_AFTER:
            log.info("worker %s: the database is back", self.worker_id)
            self._unavailable = False
            self._said.clear()
        return done
