"""The command line: `slotgraph serve | worker | migrate | apps create NAME | apps list |
apps settings APP_ID | apps add-key APP_ID KIND | apps revoke-key APP_ID KEY_ID` (README.md,
"Command line"): the parser and the entry point; the commands are cli_commands.py's."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from slotgraph import logs
from slotgraph.cli_help import DESCRIPTION, EPILOG, command
from slotgraph.settings import Settings

# The parser and the entry point; what each command does is cli_commands.py's, imported once the
# arguments are parsed (`slotgraph --help` needs none of it), and each of its commands imports
# what it uses in its own function.


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="slotgraph",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p_serve = command(sub, "serve")
    p_serve.add_argument(
        "--host",
        default=None,
        help="the address to listen on (default: $SLOTGRAPH_HOST or 127.0.0.1)",
    )
    p_serve.add_argument(
        "--port", type=int, default=None, help="the port (default: $SLOTGRAPH_PORT or 8000)"
    )
    p_serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    p_serve.add_argument(
        "--no-worker",
        action="store_true",
        help="run no worker in the server processes (run `slotgraph worker` instead)",
    )

    command(sub, "worker")
    command(sub, "migrate")

    p_apps = command(sub, "apps")
    apps_sub = p_apps.add_subparsers(dest="apps_command", required=True)
    p_create = command(apps_sub, "create")
    p_create.add_argument("name", metavar="NAME", help="the app's name (apps list shows it)")
    command(apps_sub, "list")
    p_settings = command(apps_sub, "settings")
    p_settings.add_argument("app_id", metavar="APP_ID", help="the app's app_id (apps list)")
    p_settings.add_argument(
        "pairs", nargs="*", metavar="NAME=VALUE", help="a setting to change; none: show them"
    )

    p_add = command(apps_sub, "add-key")
    p_add.add_argument("app_id", metavar="APP_ID", help="the app's app_id (apps list)")
    p_add.add_argument("kind", choices=("secret", "public"), help="the kind of key")
    p_revoke = command(apps_sub, "revoke-key")
    p_revoke.add_argument("app_id", metavar="APP_ID", help="the app's app_id (apps list)")
    p_revoke.add_argument("key_id", metavar="KEY_ID", help="the key's key_id (apps list)")

    args = parser.parse_args(argv)
    import json

    from slotgraph import cli_commands as commands
    from slotgraph import cli_database as database
    from slotgraph.cli_commands import run

    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    if args.command == "serve":
        commands.serve(args, settings)
    elif args.command == "worker":
        database.require_database(settings, migrated=False)
        run(commands.run_worker(settings))
    elif args.command == "migrate":
        run(commands.migrate_database(settings))
        print("database is at head", file=sys.stderr)
    elif args.command == "apps":
        database.require_database(settings)
    if args.command == "apps" and args.apps_command == "create":
        _say(commands.created_json(run(commands.create_tenant(settings, args.name))))
    elif args.command == "apps" and args.apps_command == "list":
        _say(json.dumps(run(commands.list_apps(settings)), indent=2))
    elif args.command == "apps" and args.apps_command == "settings":
        _say(run(commands.app_settings(settings, args.app_id, args.pairs)))
    elif args.command == "apps" and args.apps_command == "add-key":
        _say(run(commands.add_key(settings, args.app_id, args.kind)))
    elif args.command == "apps" and args.apps_command == "revoke-key":
        _say(run(commands.revoke_key(settings, args.app_id, args.key_id)))


def _say(text: str) -> None:
    """Print a command's answer. A reader that has gone (`slotgraph apps list | head -1`) ends
    the command with status 1 and no traceback, as other command-line tools do; before, a
    BrokenPipeError's traceback followed the answer."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python's own advice: point stdout at /dev/null, or its flush at exit fails again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
