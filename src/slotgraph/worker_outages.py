"""How the worker says a database outage: each kind once (again each minute while it lasts),
and its end once. The worker (worker.py) runs every step of its loops through `Outages.guarded`,
which keeps a failing step from ending the loop; so does its calendar sync (syncer.py), with
an `Outages` of its own (its own lines, its own end: its rounds fail and pass apart from the
worker's steps)."""

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

    def __init__(
        self,
        who: str,
        logger: logging.Logger = log,
        *,
        failed: str = "worker cycle failed",
    ) -> None:
        self.who = who  # each line begins so: "worker <id>", "calendar sync"
        self.log = logger
        self.failed = failed  # said, with its traceback, of a step that failed otherwise
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
            if not self.said(exc):
                self.log.exception("%s; retrying", self.failed)
            return 0
        if self._unavailable and time.monotonic() - self._failed_at >= _BACK_AFTER:
            self.log.info("%s: the database is back", self.who)
            self._unavailable = False
            self._said.clear()
        return done

    def said(self, exc: BaseException) -> bool:
        """Whether `exc` is an outage, said by the rule (or not yet again); any other error is
        the caller's to say."""
        if not is_unavailable(exc):
            return False
        self._failed_at = now = time.monotonic()
        kind, said = outage(exc)  # a lock wait, a statement timeout, unreachable, ...
        if now - self._said.get(kind, -_SAY_AGAIN) >= _SAY_AGAIN:
            self.log.warning("%s: %s (%s); retrying", self.who, kind, said)
            self._said[kind] = now
        self._unavailable = True
        return True
