"""`slotgraph worker` whose webhook sends answer 200 at once, neither signed nor POSTed
(`python -m bench.instant_worker worker`, for bench/worker_share.py): its CPU per delivery is
what the worker spends on a delivery besides the send (fan-out, claim, record, slots)."""

from __future__ import annotations

import sys
from typing import Any

from slotgraph import cli
from slotgraph.domain.deliveries import Outcome
from slotgraph.webhooks import sender


async def _instant(*_: Any, **__: Any) -> Outcome:
    return Outcome(200, None, 0, "")


if __name__ == "__main__":
    sender.send = _instant
    cli.main(sys.argv[1:])
