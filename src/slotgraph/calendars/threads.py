"""The CalDAV threads of a process: every app's blocking CalDAV calls (connect checks, pulls,
pushes, removals) run here, and this decides which of them run now (`call`).

`THREADS` calls at once hold a slot each, an app at most `PER_APP` of them. A call in flight
`SLOW_SECONDS` is slow: it leaves its slot for a thread of its own (up to `SLOW_ROOM` x
`THREADS` slow calls at once), so the next call waiting starts, as the webhook worker's slow
sends leave their send slots (worker_slots.py). An app with a slow call in flight is slow: it
has one call in flight at most (its share shrinks from `PER_APP`), and its calls waiting start
after every other app's (the back of the queue). So apps whose servers hold their requests take
the slow threads, not the slots, and an app whose server answers waits about `SLOW_SECONDS` at
most, however many slow apps there are, until the slow room is full: then a call that turns
slow keeps its slot, but its deadline is cut to `SLOW_DEADLINE_SECONDS` from then
(remote.py's session ends it at the server's next answer, or its read timeout).

Before, the 8 threads were first come, first served, 2 per app: four apps whose servers held
their requests (300 s a call) held all 8, and every other app's connects, pulls and pushes
waited for them (docs/calendars.md).

The bookkeeping is on the event loop (one state per loop); a call's thread reports its end
there. A call the caller gave up on (a request's deadline) keeps its place until its thread is
done.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

THREADS = 8  # calls at once that hold a slot, every app's together
PER_APP = 2  # of which one app may hold at most this many (1 while it has a slow call)
SLOW_SECONDS = 2.0  # a call in flight this long is slow (as a webhook send: worker_slots.py)
SLOW_ROOM = 3  # x THREADS: slow calls in flight at most, on threads of their own
# A slow call that found the slow room full keeps its slot for at most this long from then.
SLOW_DEADLINE_SECONDS = 30.0
_MOST = THREADS * (1 + SLOW_ROOM)  # threads at most: the slots and the slow room
T = TypeVar("T")
P = ParamSpec("P")


@dataclass
class Cut:
    """A call's deadline (time.monotonic()), set when it is slow and keeps its slot; read by
    the call's HTTP session in its thread (remote.py)."""

    at: float | None = None


cut: contextvars.ContextVar[Cut | None] = contextvars.ContextVar("caldav_cut", default=None)


@functools.cache
def _threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(_MOST, thread_name_prefix="slotgraph-caldav")


@dataclass(eq=False)
class _Call:
    app: Hashable
    granted: asyncio.Future[None]
    seq: int  # its place in the order of arrival
    cut: Cut = field(default_factory=Cut)
    started: bool = False
    gone: bool = False  # its caller gave up before its turn
    in_slot: bool = False
    slow: bool = False
    timer: asyncio.TimerHandle | None = None


@dataclass
class _App:
    running: int = 0  # calls in flight (slots or slow threads)
    slow: int = 0  # of which slow
    waiting: int = 0
    queue: deque[_Call] = field(default_factory=deque)  # its waiting calls, in order

    @property
    def share(self) -> int:
        return 1 if self.slow else PER_APP

    def next(self) -> _Call | None:
        """The call it would start now; None: none waits, or its share is used up. (Calls
        given up are dropped here, when they reach the front, not searched for.)"""
        while self.queue and self.queue[0].gone:
            self.queue.popleft()
        return self.queue[0] if self.queue and self.running < self.share else None


class _Lanes:
    """One event loop's calls: in the slots, slow, and waiting.

    Which call starts next: the first to arrive among the apps that may start one (a call
    waiting, their share not used up), apps without a slow call first. Those apps are offered
    in two heaps (without, with a slow call), by the arrival of the call each would start: every
    change of an app (a call arrives, starts, turns slow, ends, is given up) offers it again,
    and an offer that no longer holds is dropped when it comes up. So a start costs O(log n)
    amortised. Before, every admission walked the whole queue of waiting calls, twice: one
    app's thousands of calls waiting behind its share were walked at each start of any call."""

    def __init__(self) -> None:
        self.in_slots = 0
        self.slow = 0  # slow calls that left their slot
        self.apps: dict[Hashable, _App] = {}  # kept while the app has calls, no longer
        self.ready: tuple[list[tuple[int, Hashable]], ...] = ([], [])  # by: has a slow call
        self.arrived = 0

    def enter(self, app: Hashable) -> _Call:
        self.arrived += 1
        call = _Call(app, asyncio.get_running_loop().create_future(), self.arrived)
        lane = self.apps.setdefault(app, _App())
        lane.waiting += 1
        lane.queue.append(call)
        self._offer(app, lane)
        self._admit()
        return call

    def _offer(self, key: Hashable, app: _App) -> None:
        """`app` may start a call: into its heap. A heap grown past twice the apps (stale
        offers) is built again from the apps, so it stays O(apps) and costs O(1) amortised."""
        call = app.next()
        if call is None:
            return
        slow = bool(app.slow)
        heap = self.ready[slow]
        heapq.heappush(heap, (call.seq, key))
        if len(heap) > 2 * len(self.apps) + 16:
            heap[:] = [
                (c.seq, k)
                for k, a in self.apps.items()
                if bool(a.slow) == slow and (c := a.next()) is not None
            ]
            heapq.heapify(heap)

    def _admit(self) -> None:
        """Start waiting calls while a slot is free: the calls of apps without a slow call
        first, in order of arrival; then slow apps'."""
        for slow, heap in enumerate(self.ready):
            while heap and self.in_slots < THREADS:
                seq, key = heapq.heappop(heap)
                app = self.apps.get(key)
                if app is None or bool(app.slow) != slow:
                    continue  # stale: gone, or offered in the other heap since
                call = app.next()
                if call is None or call.seq != seq:
                    continue  # stale: that call started or was given up
                app.queue.popleft()
                self._start(call, app)
                self._offer(key, app)

    def _start(self, call: _Call, app: _App) -> None:
        app.waiting -= 1
        app.running += 1
        self.in_slots += 1
        call.started = call.in_slot = True
        loop = asyncio.get_running_loop()
        call.timer = loop.call_later(SLOW_SECONDS, self._slow_now, call)
        if not call.granted.done():
            call.granted.set_result(None)

    def _slow_now(self, call: _Call) -> None:
        call.timer = None
        call.slow = True
        app = self.apps[call.app]
        app.slow += 1
        self._offer(call.app, app)  # to the back: the slow apps' heap
        if self.slow < SLOW_ROOM * THREADS:
            self.slow += 1
            self.in_slots -= 1
            call.in_slot = False
            self._admit()
        else:
            call.cut.at = time.monotonic() + SLOW_DEADLINE_SECONDS

    def gave_up(self, call: _Call) -> None:
        """The caller stopped waiting for its turn (cancelled)."""
        if call.started:
            return  # its thread was not started: `end` is called by `call`
        call.gone = True  # dropped from its app's queue when it reaches the front
        app = self.apps[call.app]
        app.waiting -= 1
        if not app.waiting:
            app.queue.clear()
        else:
            self._offer(call.app, app)  # its next call, if this one was first
        self._forget(call.app, app)

    def end(self, call: _Call) -> None:
        if call.timer is not None:
            call.timer.cancel()
        if call.in_slot:
            self.in_slots -= 1
        elif call.slow:
            self.slow -= 1
        app = self.apps[call.app]
        app.running -= 1
        if call.slow:
            app.slow -= 1
        self._forget(call.app, app)
        self._offer(call.app, app)
        self._admit()

    def _forget(self, key: Hashable, app: _App) -> None:
        if not app.running and not app.waiting:
            del self.apps[key]


_lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lanes] = weakref.WeakKeyDictionary()


async def call(app: Hashable, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run one blocking CalDAV call for `app` in the CalDAV threads, when its turn comes (with
    the caller's context, for its log lines)."""
    loop = asyncio.get_running_loop()
    lanes = _lanes.get(loop) or _lanes.setdefault(loop, _Lanes())
    turn = lanes.enter(app)
    try:
        await turn.granted
    except BaseException:
        lanes.gave_up(turn)
        if turn.started:
            lanes.end(turn)
        raise
    try:
        context = contextvars.copy_context()
        context.run(cut.set, turn.cut)
        future = _threads().submit(functools.partial(context.run, fn, *args, **kwargs))
    except BaseException:
        lanes.end(turn)
        raise

    def finished(_: object) -> None:  # in the call's thread
        with suppress(RuntimeError):  # the loop closed meanwhile: its state went with it
            loop.call_soon_threadsafe(lanes.end, turn)

    future.add_done_callback(finished)
    return await asyncio.wrap_future(future)
