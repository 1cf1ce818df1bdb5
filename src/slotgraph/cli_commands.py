"""What the command line's commands do (cli.py parses the arguments and calls these): `serve`,
`run_worker`, `migrate_database` and the `apps` commands, with the checks and messages they need."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from slotgraph import cli_database as database
from slotgraph.settings import Settings

if TYPE_CHECKING:
    from slotgraph.appsettings import AppSettings
    from slotgraph.services import apps

# Each command imports what it uses, in its own function: `slotgraph --help` and a command's
# parser need none of it (cli.py imports this module only once the arguments are parsed), and
# `serve --workers N` children import cli.py again before the app (docs/testing.md, "Process
# starts": --help went from 1.7-1.8 s of CPU to 0.7 s).


T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """How the command line runs a coroutine, every command's: on uvloop, the loop `serve` gives
    uvicorn (`loop="uvloop"` below), so `slotgraph worker` runs on the loop the worker inside
    `serve` runs on. The worker's client (aiohttp) and PostgreSQL's driver (asyncpg) spend much of
    their CPU in the loop's transports and callbacks (docs/benchmarks.md, "Webhooks", eleventh
    pass; ADR 0014). The floor's client (bench/post_floor.py) runs on it too."""
    import uvloop

    return uvloop.run(main)


def _now() -> datetime:
    return datetime.now(UTC)


async def migrate_database(settings: Settings) -> None:
    from slotgraph.db.engine import create_engine

    engine = create_engine(settings.database_url, settings)
    try:
        await database.migrate(engine, settings)
    finally:
        await engine.dispose()


async def bootstrap(settings: Settings) -> apps.CreatedApp | str | None:
    """Migrate, then make sure one app exists (BOOTSTRAP_SECRET_KEY fixes its secret key): the
    app made now, or what to tell the person who set a BOOTSTRAP_SECRET_KEY that is not a key of
    the existing apps (it is read on the first start only)."""
    from slotgraph.db.engine import create_engine, session_factory
    from slotgraph.services import apps

    engine = create_engine(settings.database_url, settings)
    secret = settings.bootstrap_secret_key
    try:
        await database.migrate(engine, settings)
        sessions = session_factory(engine)
        async with sessions() as session:
            if await apps.count_apps(session):
                if secret and not await apps.authenticate(session, key=secret.get_secret_value()):
                    return _bootstrap_key_unused(settings)
                return None
            return await apps.create_tenant(
                session,
                name="default",
                now=_now(),
                secret_key=secret.get_secret_value() if secret else None,
            )
    finally:
        await engine.dispose()


def _bootstrap_key_unused(settings: Settings) -> str:
    import shlex
    from pathlib import Path

    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    start_afresh = "use an empty database"
    if url.get_backend_name() == "sqlite":
        # The database is the file and, in WAL mode, its -wal and -shm beside it (what a server
        # killed leaves); nothing else: ./data/mail holds emails already written, and may stay.
        db = Path(url.database or "").resolve()
        files = " ".join(shlex.quote(f"{db}{end}") for end in ("", "-wal", "-shm"))
        start_afresh = (
            f"stop the server, remove {db} and its -wal and -shm files if there are any "
            f"(rm -f {files})"
        )
    return (
        "slotgraph: SLOTGRAPH_BOOTSTRAP_SECRET_KEY is not a key of any app in "
        f"{database.where(settings)}, so requests with it get 401. It is read on the first start "
        "only, to create the first app, and this database has apps already. Use the secret "
        "key printed on its first start, make another app with `slotgraph apps create NAME`, "
        f"or, to begin again with your key, {start_afresh} and start again."
    )


async def create_tenant(settings: Settings, name: str) -> apps.CreatedApp:
    from slotgraph.db.engine import create_engine, session_factory
    from slotgraph.services import apps

    engine = create_engine(settings.database_url, settings)
    try:
        async with session_factory(engine)() as session:
            return await apps.create_tenant(session, name=name, now=_now())
    finally:
        await engine.dispose()


async def list_apps(settings: Settings) -> list[dict[str, object]]:
    from slotgraph.db.engine import create_engine, session_factory
    from slotgraph.services import apps

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
            "keys": [_key_out(k) for k in keys],
        }
        for app, keys in rows
    ]


_ID_NAMES = {"app_id": "an app id", "key_id": "a key id"}


def _ids(**given: str) -> dict[str, Any]:
    """Each named id as a UUID, or the command stops saying which one is not an id."""
    import uuid

    ids = {}
    for name, value in given.items():
        try:
            ids[name] = uuid.UUID(value)
        except ValueError:
            raise SystemExit(f"not {_ID_NAMES[name]}: {value!r}") from None
    return ids


async def add_key(settings: Settings, app_id: str, kind: str) -> str:
    """`apps add-key APP_ID secret|public`: the new key, shown once, as JSON."""
    import json

    from slotgraph.db.engine import create_engine, session_factory
    from slotgraph.errors import NotFound
    from slotgraph.services import apps

    ids = _ids(app_id=app_id)
    engine = create_engine(settings.database_url, settings)
    try:
        async with session_factory(engine)() as session:
            added = await apps.add_key(
                session,
                app_id=ids["app_id"],
                kind="secret" if kind == "secret" else "public",
                now=_now(),
            )
    except NotFound as exc:
        raise SystemExit(f"{exc.detail} `slotgraph apps list` shows the apps.") from None
    finally:
        await engine.dispose()
    out = {"app_id": str(added.app_id), "key_id": str(added.key_id), "kind": added.kind}
    return json.dumps(out | {"key": added.key}, indent=2)


async def revoke_key(settings: Settings, app_id: str, key_id: str) -> str:
    """`apps revoke-key APP_ID KEY_ID`: the key as `apps list` shows it, now revoked; a warning
    on stderr when the app has no secret key left."""
    import json

    from slotgraph.db.engine import create_engine, session_factory
    from slotgraph.errors import NotFound
    from slotgraph.services import apps

    ids = _ids(app_id=app_id, key_id=key_id)
    engine = create_engine(settings.database_url, settings)
    try:
        async with session_factory(engine)() as session:
            row, live = await apps.revoke_key(session, **ids, now=_now())
    except NotFound as exc:
        raise SystemExit(f"{exc.detail} `slotgraph apps list` shows the keys.") from None
    finally:
        await engine.dispose()
    if not live:
        print(
            f"slotgraph: app {app_id} has no secret key left; `slotgraph apps add-key {app_id} "
            "secret` makes one.",
            file=sys.stderr,
        )
    return json.dumps(_key_out(row), indent=2)


def _key_out(k: Any) -> dict[str, object]:
    return {
        "key_id": str(k.id),
        "kind": k.kind,
        "prefix": k.prefix,
        "created_at": k.created_at.isoformat(),
        "revoked": bool(k.revoked_at),
        "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
    }


def _settings_patch(pairs: Sequence[str]) -> AppSettings:
    """`NAME=VALUE` pairs (VALUE is JSON, or else a plain string; `a.b=` sets a nested field)."""
    import json

    from pydantic import ValidationError

    from slotgraph.appsettings import AppSettings

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


async def app_settings(settings: Settings, app_id: str, pairs: Sequence[str]) -> str:
    from slotgraph.db.engine import create_engine, session_factory
    from slotgraph.errors import NotFound, ValidationFailed
    from slotgraph.services import apps

    uid = _ids(app_id=app_id)["app_id"]
    patch = _settings_patch(pairs) if pairs else None
    engine = create_engine(settings.database_url, settings)
    try:
        async with session_factory(engine)() as session:
            if patch is None:
                out = await apps.get_app(session, app_id=uid)
            else:
                out = await apps.update_settings(
                    session, app_id=uid, data=patch, max_rate_limit=settings.max_app_rate_limit
                )
    except ValidationFailed as exc:  # a rule the service checks (the ceiling, a template): each
        lines = "".join(f"\n  {field}: {message}" for field, message in exc.errors)
        raise SystemExit(f"invalid settings:{lines}") from None
    except NotFound as exc:
        raise SystemExit(f"{exc.detail} `slotgraph apps list` shows the apps.") from None
    finally:
        await engine.dispose()
    return out.model_dump_json(indent=2)


async def run_worker(settings: Settings) -> None:
    """Run the worker until SIGTERM or SIGINT, then stop gracefully."""
    # Imported here, not at the top: `serve --workers N` children re-import cli.py before
    # they answer uvicorn's 5-second health check, and the worker's imports are the heaviest.
    import asyncio
    import signal

    from slotgraph import heap, metrics, warm
    from slotgraph.db.engine import create_engine
    from slotgraph.dbclock import DatabaseClock
    from slotgraph.syncer import check_encryption_key
    from slotgraph.worker import Worker

    engine = create_engine(settings.database_url, settings)
    await database.migrate(engine, settings)
    await check_encryption_key(engine, settings)
    if settings.worker_metrics_port:
        metrics.serve_http(settings.worker_metrics_port, settings.host)
    worker = Worker(engine, settings, clock=DatabaseClock(engine))  # the database's time
    heap.settle_the_heap()  # as serve's app does: no full collection walks the start-up's objects
    task = asyncio.create_task(worker.run())
    # its webhook, email and calendar libraries, in a thread, as serve's app does (warm.py)
    warming = asyncio.create_task(warm.warm_up(worker.sessions, serves=False, works=True))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.wait({task, asyncio.create_task(stop.wait())}, return_when="FIRST_COMPLETED")
    warming.cancel()
    await worker.stop(task)
    await engine.dispose()


def created_json(created: apps.CreatedApp) -> str:
    import json

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
    import tempfile

    import uvicorn

    from slotgraph.metrics import MULTIPROC_ENV

    if args.no_worker:
        # The app factory reads settings from the environment in each server process.
        os.environ["SLOTGRAPH_RUN_WORKER"] = "false"
    host = args.host or settings.host
    port = args.port or settings.port
    # The app's settings are read again in each server process (and by the in-process worker,
    # whose emails link to http://HOST:PORT unless SLOTGRAPH_PUBLIC_URL is set): `--host` and
    # `--port` must reach them, or `serve --port 8020` mailed links to port 8000.
    os.environ["SLOTGRAPH_HOST"], os.environ["SLOTGRAPH_PORT"] = host, str(port)
    # prometheus-client's multiprocess mode: every server process writes its samples here, and
    # /metrics adds them up. Set before any process imports the library (slotgraph.metrics).
    if not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="slotgraph-metrics-")
    created = run(bootstrap(settings))
    if isinstance(created, str):
        print(created, file=sys.stderr, flush=True)
    elif created is not None:
        print("Created the default app. Keys are shown once; keep them safe:", file=sys.stderr)
        print(created_json(created), file=sys.stderr, flush=True)
    # After the keys: they are printed once, and this start made them.
    if _taken(host, port, workers=args.workers):
        raise SystemExit(
            f"slotgraph: {host}:{port} is taken: another program listens there (a `slotgraph "
            f"serve` started before?). Stop it, or serve on another port: `slotgraph serve "
            f"--port {port + 1}`, or `SLOTGRAPH_PORT={port + 1} make serve`."
        )
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
        # uvicorn's httptools protocol with a deadline for a request's head and a bound on the
        # connections one address keeps open (api/connections.py; the body's deadline is the
        # guard's): uvicorn has neither, and a client that never finished its head held its
        # connection for as long as it liked (docs/security.md, ADR 0012).
        http="slotgraph.api.connections:BoundedHttpToolsProtocol",
        # The client address the rate limits count (docs/security.md): the connection's, unless
        # a proxy is named. uvicorn's own default trusts X-Forwarded-For from 127.0.0.1, so any
        # client on this host, or behind a proxy that passes the header on unchanged (a TCP
        # proxy, a tunnel), chose its address with every request and was never limited.
        timeout_graceful_shutdown=settings.shutdown_seconds,
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # With --workers, uvicorn kills a worker process that has not answered its health check
        # within this many seconds, and starts another. Its default, 5 s, is shorter than an
        # import of the app takes on a busy machine, where workers were killed and restarted
        # without end and the server never answered.
        timeout_worker_healthcheck=WORKER_START_SECONDS,
    )


def _taken(host: str, port: int, *, workers: int) -> bool:
    """Whether another socket listens on an address uvicorn would bind for `host:port`, each
    bound as uvicorn binds it (SO_REUSEADDR). uvicorn said only `[Errno 98] error while
    attempting to bind on address ...: address already in use`, in a JSON log line, and not
    what to do. Any other failure is left to uvicorn.

    One process binds every address the name resolves to, IPv6 ones IPv6-only (the event
    loop's `create_server`: `localhost` is often ::1 and 127.0.0.1, `""` every interface of
    both families); with `--workers`, uvicorn binds one socket itself (`Config.bind_socket`:
    IPv4 unless the host has a colon, IPv6 left dual-stack). Only the first address was
    checked, so a port held on 127.0.0.1 alone passed for `localhost` (::1 first), and uvicorn
    stopped with its Errno 98 line."""
    import contextlib
    import errno
    import socket

    addresses: list[tuple[int, int, int, tuple[Any, ...]]]
    try:
        if workers > 1:
            one = socket.AF_INET6 if ":" in host else socket.AF_INET
            addresses = [(one, socket.SOCK_STREAM, 0, (host, port))]
        else:
            found = socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            addresses = list(dict.fromkeys((f, k, p, a) for f, k, p, _, a in found))
        with contextlib.ExitStack() as held:  # all at once, as uvicorn holds them
            for family, kind, proto, address in addresses:
                probe = held.enter_context(socket.socket(family, kind, proto))
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6 and workers <= 1:  # as create_server sets it
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE
    return False


WORKER_START_SECONDS = 60
