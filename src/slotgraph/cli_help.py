"""What `slotgraph --help` and each command's `--help` say (cli.py builds the parser with
them; tests/test_readme_commands.py reads them)."""

from __future__ import annotations

import argparse
from typing import Any

from slotgraph.settings import DEFAULT_DATABASE_URL

DESCRIPTION = "slotgraph, a self-hostable booking engine: the server, its worker and its apps."
EPILOG = f"""\
The database is $SLOTGRAPH_DATABASE_URL, by default
{DEFAULT_DATABASE_URL} in the current folder (`serve` and `migrate`
create it; the other commands never do). Every setting comes from the
environment (SLOTGRAPH_*): docs/operations.md. `slotgraph COMMAND --help`
says more about each command."""
_DATABASE = "Uses $SLOTGRAPH_DATABASE_URL (slotgraph --help)."
_COMMANDS = {
    "serve": (
        "migrate to head, then serve the API, the booking pages and the worker",
        "Migrate the database to head (creating it on SQLite), then serve the API, the booking "
        "pages and, unless --no-worker, the worker (webhooks, emails, calendars, timers) in "
        "the same process. On a new database it creates the first app and prints its keys "
        "once ($SLOTGRAPH_BOOTSTRAP_SECRET_KEY chooses the secret key). " + _DATABASE,
    ),
    "worker": (
        "run the worker alone: webhooks, emails, calendars and timers (no HTTP server)",
        "Run the worker alone: deliver webhooks, emails and calendar pushes, pull calendars' "
        "busy time, and run the timers (expiry, auto-complete, reminders), with no HTTP "
        "server. Any number may run beside `serve --no-worker` processes. Never creates a "
        "database. " + _DATABASE,
    ),
    "migrate": (
        "create or upgrade the database schema to head",
        "Create the database's schema, or upgrade it to head (what `serve` does first). "
        + _DATABASE,
    ),
    "apps": ("manage apps (tenants), their keys and settings", None),
    "create": (
        "create an app; prints its keys once, as JSON",
        "Create an app and print its app_id, secret_key and public_key as JSON. The keys are "
        "shown only here (stored as hashes). " + _DATABASE,
    ),
    "list": (
        "list apps and key prefixes, as JSON",
        "List every app with its keys' prefixes (not the keys), as JSON. " + _DATABASE,
    ),
    "settings": (
        "show an app's settings, or change some (NAME=VALUE, VALUE is JSON), as JSON",
        "Show an app's settings, or change the ones named (NAME=VALUE, VALUE as JSON, a dotted "
        "NAME for one field of a setting), and print them as JSON; as PUT /v1/app does "
        "(docs/api.md). E.g. slotgraph apps settings APP_ID "
        "allowed_origins='[\"https://shop.example\"]' rate_limits.public_per_minute=120. "
        + _DATABASE,
    ),
    "add-key": (
        "give an app a new secret or public key; prints it once, as JSON",
        "Give an app a new secret or public key beside the ones it has, and print it (with its "
        "key_id) as JSON, shown only here. The old key keeps working until `apps revoke-key`: "
        "rotating a key is add-key, moving every client to the new key, then revoke-key "
        '(docs/operations.md, "Rotating keys"). ' + _DATABASE,
    ),
    "revoke-key": (
        "refuse one of an app's keys from now on (KEY_ID from apps list)",
        "Refuse one of an app's keys (KEY_ID from `apps list`): requests with it get 401, at "
        "once in a server process that has not seen it in the last 30 s, within 30 s in one "
        "that has (each keeps a key it has looked up that long). Prints the key as `apps list` "
        "shows it. " + _DATABASE,
    ),
}


def command(sub: Any, name: str) -> argparse.ArgumentParser:
    short, long = _COMMANDS[name]
    parser: argparse.ArgumentParser = sub.add_parser(name, help=short, description=long or short)
    return parser
