"""Warm-up: the libraries a ready process is about to use, imported in a thread of their own.

A process imports at start only what every process needs (tests/system/test_start_imports.py):
aiohttp by the first webhook send, Jinja2 by the first page or email, icalendar by the first .ics,
feed, push or pull. Imported at first use, each blocked the event loop, and every request on it,
while it loaded (measured: aiohttp 117 ms, icalendar 41, Jinja2 20). Once the process has started,
`warm_up` asks the database what this one will use soon and imports that in a daemon thread: the
loop goes on serving (the thread takes the interpreter's lock in slices, `sys.getswitchinterval`,
5 ms), and the first use finds the modules loaded. What the database does not show coming (a
first webhook endpoint, page, booking or calendar made after the start) is imported at its
first use, as before. A process whose database has none of them imports nothing more.

Its edges (tests/test_warm.py, tests/system/test_warm_stop.py):
- The loop importing what the thread is importing waits on Python's module lock for the rest,
  and gets the module whole. Python 3.11 can fail such a race only on an import cycle entered at
  two of its modules, one by each thread ('deadlock detected by _ModuleLock' in one of them): the
  libraries are entered at their top package on both sides, and slotgraph's own cycles (a
  package and its submodules) are all loaded before the warm-up starts.
- An import or a warmer that fails is a warning with its traceback, and the rest is imported;
  the server never hears of it (the first use imports it again, and fails with its request).
- The thread is a daemon: a stop while it imports waits for nothing (`slotgraph worker` returns
  from asyncio.run, which would wait for a thread that is not).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Sequence

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from slotgraph.db.models import Booking, BookingPage, CalendarConnection, WebhookEndpoint

log = logging.getLogger("slotgraph.warm")

# What each kind of work imports at its first use (the modules that hold the lazy imports);
# "module:function": then call it, to prepare what the first use would (compile templates).
WEBHOOKS = ("aiohttp", "slotgraph.webhooks.sender")
EMAILS = ("jinja2", "icalendar", "slotgraph.notifications.render", "slotgraph.notifications.ics")
# a page's templates (compiled in the default locale) and its .ics
PAGES = ("icalendar", "slotgraph.notifications.ics", "slotgraph.web.templating:precompile")
CALENDARS = ("icalendar", "recurring_ical_events", "slotgraph.calendars.ical")


async def soon_used(
    sessions: async_sessionmaker[AsyncSession], *, serves: bool, works: bool
) -> list[str]:
    """The modules this process will import soon, by what the database holds: `serves` (HTTP
    requests: booking pages), `works` (the worker: webhooks, emails, calendars)."""
    live_endpoint = (
        WebhookEndpoint.enabled.is_(True)
        & WebhookEndpoint.deleted_at.is_(None)
        & WebhookEndpoint.calendar_id.is_(None)
    )
    async with sessions() as session, session.begin():
        endpoints, pages, bookings, calendars = (
            await session.execute(
                select(
                    exists().where(live_endpoint),
                    exists().where(BookingPage.archived_at.is_(None)),
                    exists().select_from(Booking),
                    exists().select_from(CalendarConnection),
                )
            )
        ).one()
    wanted: list[str] = []
    if works and endpoints:
        wanted += WEBHOOKS
    if works and bookings:  # their next change emails the customer
        wanted += EMAILS
    if serves and pages:
        wanted += PAGES
    if calendars:  # pulled and pushed by the worker; feeds and free/busy served
        wanted += CALENDARS
    return list(dict.fromkeys(wanted))


def start(modules: Sequence[str]) -> threading.Thread | None:
    """Import `modules` (and call their warmers) in a daemon thread (None: nothing to do)."""
    if not modules:
        return None
    thread = threading.Thread(
        target=_import_all, args=(tuple(modules),), name="slotgraph-warm", daemon=True
    )
    thread.start()
    return thread


async def warm_up(
    sessions: async_sessionmaker[AsyncSession], *, serves: bool, works: bool
) -> threading.Thread | None:
    """Start importing what this process will use soon; a database that does not answer
    warms nothing (each first use imports, as without the warm-up)."""
    try:
        modules = await soon_used(sessions, serves=serves, works=works)
    except Exception as exc:  # an outage or a schema not migrated yet: nothing to warm
        log.debug("warm-up skipped: %s", exc)
        return None
    return start(modules)


def _import_all(modules: tuple[str, ...]) -> None:
    for entry in modules:
        name, _, function = entry.partition(":")
        try:
            module = importlib.import_module(name)
            if function:
                getattr(module, function)()
        except Exception:  # its first use will say it, with the request or send that needs it
            log.warning("warm-up: %s failed", entry, exc_info=True)
