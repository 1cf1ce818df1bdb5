"""`slotgraph serve | worker | migrate | apps create NAME | apps list | apps settings APP_ID`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from slotgraph import logs
from slotgraph.appsettings import AppSettings
from slotgraph.db.engine import create_engine, session_factory
from slotgraph.db.migrate import migrate
from slotgraph.metrics import MULTIPROC_ENV
from slotgraph.services import apps
from slotgraph.settings import Settings
from slotgraph.worker import Worker


def _now() -> datetime:
    return datetime.now(UTC)


async def _migrate(settings: Settings) -> None:
    engine = create_engine(settings.database_url, settings)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


async def _bootstrap(settings: Settings) -> apps.CreatedApp | None:
    """Migrate, then make sure one app exists (BOOTSTRAP_SECRET_KEY fixes its secret key)."""
    engine = create_engine(settings.database_url, settings)
    try:
        await migrate(engine)
        sessions = session_factory(engine)
        async with sessions() as session:
            if await apps.count_apps(session):
                return None
            secret = settings.bootstrap_secret_key
            return await apps.create_tenant(
                session,
                name="default",
                now=_now(),
                secret_key=secret.get_secret_value() if secret else None,
            )
    finally:
        await engine.dispose()


async def _create_tenant(settings: Settings, name: str) -> apps.CreatedApp:
    engine = create_engine(settings.database_url, settings)
    try:
        async with session_factory(engine)() as session:
            return await apps.create_tenant(session, name=name, now=_now())
    finally:
        await engine.dispose()


async def _list_apps(settings: Settings) -> list[dict[str, object]]:
    engine = create_engine(settings.database_url, settings)
    try:
        async with session_factory(engine)() as session:
            rows = await apps.list_apps(session)
    finally:
        await engine.dispose()
    return [
        {
            "app_id": str(app.id),
            "name": app.name,
            "created_at": app.created_at.isoformat(),
            "keys": [
                {
                    "key_id": str(k.id),
                    "kind": k.kind,
                    "prefix": k.prefix,
                    "revoked": bool(k.revoked_at),
                }
                for k in keys
            ],
        }
        for app, keys in rows
    ]


def _settings_patch(pairs: Sequence[str]) -> AppSettings:
    """`NAME=VALUE` pairs (VALUE is JSON, or else a plain string; `a.b=` sets a nested field)."""
    patch: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"expected NAME=VALUE, got {pair!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        *parents, leaf = name.split(".")
        node = patch
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return AppSettings.model_validate(patch)
    except ValidationError as exc:
        raise SystemExit(f"invalid settings:\n{exc}") from None


async def _app_settings(settings: Settings, app_id: str, pairs: Sequence[str]) -> str:
    try:
        uid = uuid.UUID(app_id)
    except ValueError:
        raise SystemExit(f"not an app id: {app_id!r}") from None
    patch = _settings_patch(pairs) if pairs else None
    engine = create_engine(settings.database_url, settings)
    try:
        async with session_factory(engine)() as session:
            if patch is None:
                out = await apps.get_app(session, app_id=uid)
            else:
                out = await apps.update_settings(session, app_id=uid, data=patch)
    finally:
        await engine.dispose()
    return out.model_dump_json(indent=2)


async def _worker(settings: Settings) -> None:
    """Run the worker until SIGTERM or SIGINT, then stop gracefully."""
    engine = create_engine(settings.database_url, settings)
    await migrate(engine)
    worker = Worker(engine, settings, clock=_now)
    task = asyncio.create_task(worker.run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.wait({task, asyncio.create_task(stop.wait())}, return_when="FIRST_COMPLETED")
    await worker.stop(task)
    await engine.dispose()


def _created_json(created: apps.CreatedApp) -> str:
    return json.dumps(
        {
            "app_id": str(created.app_id),
            "name": created.name,
            "secret_key": created.secret_key,
            "public_key": created.public_key,
        },
        indent=2,
    )


def serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    if args.no_worker:
        # The app factory reads settings from the environment in each server process.
        os.environ["SLOTGRAPH_RUN_WORKER"] = "false"
    host = args.host or settings.host
    port = args.port or settings.port
    # prometheus-client's multiprocess mode: every server process writes its samples here, and
    # /metrics adds them up. Set before any process imports the library (slotgraph.metrics).
    if not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="slotgraph-metrics-")
    created = asyncio.run(_bootstrap(settings))
    if created is not None:
        print("Created the default app. Keys are shown once; keep them safe:", file=sys.stderr)
        print(_created_json(created), file=sys.stderr, flush=True)
    uvicorn.run(
        "slotgraph.api.app:serve_app",
        factory=True,
        host=host,
        port=port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        log_config=None,  # logs.configure() in each process: JSON lines with request ids
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="slotgraph", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_serve = sub.add_parser("serve", help="migrate to head, then serve the API")
    p_serve.add_argument("--host", default=None, help="default: $SLOTGRAPH_HOST or 127.0.0.1")
    p_serve.add_argument("--port", type=int, default=None, help="default: $SLOTGRAPH_PORT or 8000")
    p_serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    p_serve.add_argument(
        "--no-worker",
        action="store_true",
        help="do not run the webhook/timer worker in the server processes",
    )

    sub.add_parser("worker", help="run the webhook delivery and timer loop (no HTTP server)")

    sub.add_parser("migrate", help="upgrade the database schema to head")

    p_apps = sub.add_parser("apps", help="manage apps (tenants) and their keys")
    apps_sub = p_apps.add_subparsers(dest="apps_command", required=True)
    p_create = apps_sub.add_parser("create", help="create an app; prints its keys once, as JSON")
    p_create.add_argument("name")
    apps_sub.add_parser("list", help="list apps and key prefixes, as JSON")
    p_settings = apps_sub.add_parser(
        "settings",
        help="show an app's settings, or change some: NAME=VALUE (VALUE is JSON), as JSON",
        description="e.g. slotgraph apps settings APP_ID allowed_origins='[\"https://a.example\"]'"
        " rate_limits.public_per_minute=120",
    )
    p_settings.add_argument("app_id")
    p_settings.add_argument("pairs", nargs="*", metavar="NAME=VALUE")

    args = parser.parse_args(argv)
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    if args.command == "serve":
        serve(args, settings)
    elif args.command == "worker":
        asyncio.run(_worker(settings))
    elif args.command == "migrate":
        asyncio.run(_migrate(settings))
        print("database is at head", file=sys.stderr)
    elif args.command == "apps" and args.apps_command == "create":
        print(_created_json(asyncio.run(_create_tenant(settings, args.name))))
    elif args.command == "apps" and args.apps_command == "list":
        print(json.dumps(asyncio.run(_list_apps(settings)), indent=2))
    elif args.command == "apps" and args.apps_command == "settings":
        print(asyncio.run(_app_settings(settings, args.app_id, args.pairs)))


if __name__ == "__main__":
    main()
