"""`python -m bench NAME [--sqlite] [--quick]`: run a benchmark and print a markdown table."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform

from bench import (
    abuse,
    availability,
    bookings,
    calendars,
    holds,
    idempotency,
    pages,
    peer,
    timekit,
    webhooks,
)
from bench.harness import table

SUITES = {
    "bookings": bookings.run,
    "availability": availability.run,
    "webhooks": webhooks.run,
    "holds": holds.run,
    "idempotency": idempotency.run,
    "timekit": timekit.run,
    "calendars": calendars.run,
    "abuse": abuse.run,
    "peer": peer.run,
    "pages": pages.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=[*SUITES, "all"])
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--quick", action="store_true", help="fewer runs: a smoke test")
    args = parser.parse_args()
    names = list(SUITES) if args.name == "all" else [args.name]
    backend = "SQLite" if args.sqlite or args.name == "peer" else "PostgreSQL"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f", {backend}"
    )
    for name in names:
        figures = asyncio.run(SUITES[name](sqlite=args.sqlite, quick=args.quick))
        print(f"\n### {name} ({backend})\n")
        print(table(figures))


if __name__ == "__main__":
    main()
