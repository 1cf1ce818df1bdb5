"""The floor's client in a process of its own (`python -m bench.post_floor URL N TAG`), started
by `bench webhooks` pinned to the worker's core: N plain POSTs to URL, 32 at a time (the worker's
`WORKER_BATCH`), through the client the worker sends with (`webhooks.sender.session`, made as
the worker makes it), each body `floor-TAG-i`, on the event loop the worker runs on (the command
line's `cli_commands.run`: uvloop since issue 15's eleventh pass; before it both ran on asyncio's
default loop). The bench times the arrivals at the receiver, as it does the worker's deliveries,
and reads this process's CPU time from /proc.
"""

from __future__ import annotations

import asyncio
import sys

from slotgraph.cli_commands import run
from slotgraph.webhooks import sender
from slotgraph.worker_slots import SLOW_ROOM

CONCURRENCY = 32  # the worker's WORKER_BATCH


async def main(url: str, n: int, tag: str) -> None:
    sem = asyncio.Semaphore(CONCURRENCY)
    async with sender.session(connections=(1 + SLOW_ROOM) * CONCURRENCY, allow_private=True) as s:

        async def post(i: int) -> None:
            async with sem, s.post(url, data=f"floor-{tag}-{i}".encode()) as r:
                await r.read()

        await asyncio.gather(*(post(i) for i in range(n)))


if __name__ == "__main__":
    run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))  # the worker's loop
