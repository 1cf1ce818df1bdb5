"""Which waiting CalDAV call starts when a thread comes free (calendars/threads.py): the first to
arrive among the apps whose share (`PER_APP`) is not used up. Calls are real blocking functions
in the CalDAV threads, each held until the test lets it go; the order is written out by hand."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from slotgraph.calendars import threads

BOUND = 15.0


class _Held:
    """Calls that report their start and wait until the test ends them, by name."""

    def __init__(self) -> None:
        self.started: queue.Queue[str] = queue.Queue()
        self.gates: dict[str, threading.Event] = {}
        self.tasks: list[asyncio.Task[str]] = []

    def fn(self, name: str) -> str:
        self.started.put(name)
        assert self.gates[name].wait(BOUND)
        return name

    def enter(self, app: str, name: str) -> None:
        self.gates[name] = threading.Event()
        self.tasks.append(asyncio.create_task(threads.call(app, self.fn, name)))

    async def next_started(self) -> str:
        return await asyncio.to_thread(self.started.get, True, BOUND)

    def end(self, name: str) -> None:
        self.gates[name].set()


@contextmanager
def _held() -> Iterator[_Held]:
    held = _Held()
    try:
        yield held
    finally:
        for gate in held.gates.values():
            gate.set()


async def test_a_free_thread_goes_to_the_first_call_of_an_app_with_room() -> None:
    assert (threads.THREADS, threads.PER_APP) == (8, 2)
    with _held() as held:
        for app in "ABCD":  # 8 calls, 2 per app: every slot taken
            held.enter(app, f"{app}1")
            held.enter(app, f"{app}2")
        first = {await held.next_started() for _ in range(8)}
        assert first == {f"{a}{n}" for a in "ABCD" for n in (1, 2)}
        for app, name in [("A", "A3"), ("A", "A4"), ("E", "E1"), ("B", "B3")]:
            held.enter(app, name)
        held.enter("E", "E2")
        held.enter("F", "F1")
        await asyncio.sleep(0)  # (let the calls above enter: tasks start in order)
        assert held.started.empty()
        order = []
        # each end frees one slot; the call it goes to, by hand: A3 (A has 1 running), E1 (A
        # at 2: A4 waits), B3, E2, F1, then A4 (A back at 1)
        for ended in ["A1", "B1", "C1", "D1", "D2", "A2"]:
            held.end(ended)
            order.append(await held.next_started())
        assert order == ["A3", "E1", "B3", "E2", "F1", "A4"]
        for name in list(held.gates):
            held.end(name)
        await asyncio.wait_for(asyncio.gather(*held.tasks), BOUND)


async def test_calls_given_up_while_waiting_lose_their_turn() -> None:
    with _held() as held:
        for app in "ABCD":
            held.enter(app, f"{app}1")
            held.enter(app, f"{app}2")
        for _ in range(8):
            await held.next_started()
        held.enter("E", "E1")
        held.enter("E", "E2")
        held.enter("F", "F1")
        await asyncio.sleep(0)
        held.tasks[8].cancel()  # E1's caller gives up (a request's deadline)
        held.end("A1")
        assert await held.next_started() == "E2"
        held.end("B1")
        assert await held.next_started() == "F1"
        for name in list(held.gates):
            held.end(name)
        results = await asyncio.wait_for(asyncio.gather(*held.tasks, return_exceptions=True), BOUND)
        assert isinstance(results[8], asyncio.CancelledError)
