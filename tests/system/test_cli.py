"""The command line: migrate, apps create/list, and the keys serve prints on a fresh database."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from slotgraph.db.engine import create_engine
from slotgraph.db.migrate import current_revision, head_revision, migrate
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.system.conftest import start_server, stop_server

pytestmark = pytest.mark.system

# How long a command may take before it is taken for hung: a guard, not a speed limit (none is
# asserted here). A `serve` that bootstraps a fresh database took about 11 s at load 8, and the
# old limit, 60 s, was tight at load 12; a migration kept waiting runs 30 s on purpose (SQLite's
# busy timeout) before it says so.
HANG = 300


def cli(
    database_url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SLOTGRAPH_BOOTSTRAP_SECRET_KEY"} | (
        env or {}
    )
    env["SLOTGRAPH_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "slotgraph.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG,
        check=True,
    )


async def test_migrate_and_apps(fresh_database: tuple[str, str], tmp_path: Path) -> None:
    backend, url = fresh_database
    assert "head" in cli(url, "migrate").stderr
    created = json.loads(cli(url, "apps", "create", "Clinic").stdout)
    assert set(created) == {"app_id", "name", "secret_key", "public_key"}
    assert created["secret_key"].startswith("sk_")
    assert created["public_key"].startswith("pk_")
    listed = json.loads(cli(url, "apps", "list").stdout)
    assert [a["name"] for a in listed] == ["Clinic"]
    # Keys are stored hashed: the listing shows only prefixes.
    assert created["secret_key"] not in json.dumps(listed)
    assert {k["prefix"] for k in listed[0]["keys"]} == {
        created["secret_key"][:7],
        created["public_key"][:7],
    }
    # The printed key works against a server on that database (which has an app: no bootstrap).
    server = await start_server(url, backend, tmp_path / "api.log")
    try:
        async with httpx.AsyncClient() as http:
            r = await http.get(
                f"{server.url}/v1/resources",
                headers={"Authorization": f"Bearer {created['secret_key']}"},
            )
            assert r.status_code == 200
    finally:
        stop_server(server)
    assert len(json.loads(cli(url, "apps", "list").stdout)) == 1


@contextmanager
def _port_taken(url: str) -> Iterator[dict[str, str]]:
    """`serve`'s environment for `url` (no bootstrap key) with its port taken: it bootstraps,
    then cannot bind the port and exits."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {k: v for k, v in os.environ.items() if k != "SLOTGRAPH_BOOTSTRAP_SECRET_KEY"}
        yield env | {"SLOTGRAPH_DATABASE_URL": url, "SLOTGRAPH_PORT": str(taken.getsockname()[1])}


SERVE = [sys.executable, "-m", "slotgraph.cli", "serve"]


def test_serve_prints_new_keys_once(fresh_database: tuple[str, str]) -> None:
    _, url = fresh_database
    with _port_taken(url) as env:
        first = subprocess.run(SERVE, env=env, capture_output=True, text=True, timeout=HANG)
        second = subprocess.run(SERVE, env=env, capture_output=True, text=True, timeout=HANG)
    assert "Keys are shown once" in first.stderr
    keys = json.loads(first.stderr[first.stderr.index("{") : first.stderr.index("}") + 1])
    assert keys["secret_key"].startswith("sk_")
    assert "Keys are shown once" not in second.stderr
    assert keys["secret_key"] not in second.stderr


def test_serve_names_a_taken_port_and_what_to_do(fresh_database: tuple[str, str]) -> None:
    """README's `make serve` where port 8000 was taken (another serve, another program) ended
    with uvicorn's `[Errno 98] error while attempting to bind on address ('127.0.0.1', 8000):
    address already in use` in a JSON log line, and nothing said how to serve elsewhere."""
    _, url = fresh_database
    with _port_taken(url) as env:
        port = int(env["SLOTGRAPH_PORT"])
        told = subprocess.run(SERVE, env=env, capture_output=True, text=True, timeout=HANG)
    assert told.returncode == 1, told.stderr
    assert f"slotgraph: 127.0.0.1:{port} is taken" in told.stderr
    assert f"`slotgraph serve --port {port + 1}`" in told.stderr
    assert f"`SLOTGRAPH_PORT={port + 1} make serve`" in told.stderr
    assert "Keys are shown once" in told.stderr  # this start made them: printed before it stops
    assert "Errno 98" not in told.stderr  # stopped before uvicorn tried


def test_serve_says_when_the_bootstrap_key_is_not_a_key(fresh_database: tuple[str, str]) -> None:
    """README's order: `make serve` first (an app with printed keys), then the tour's
    `SLOTGRAPH_BOOTSTRAP_SECRET_KEY=sk_tour make serve`, whose key is read on a first start only:
    every request with it got 401 and nothing said why."""
    _, url = fresh_database
    with _port_taken(url) as env:
        first = subprocess.run(SERVE, env=env, capture_output=True, text=True, timeout=HANG)
        tour = {**env, "SLOTGRAPH_BOOTSTRAP_SECRET_KEY": "sk_tour"}
        second = subprocess.run(SERVE, env=tour, capture_output=True, text=True, timeout=HANG)
        keys = json.loads(first.stderr[first.stderr.index("{") : first.stderr.index("}") + 1])
        mine = {**env, "SLOTGRAPH_BOOTSTRAP_SECRET_KEY": keys["secret_key"]}
        third = subprocess.run(SERVE, env=mine, capture_output=True, text=True, timeout=HANG)
    assert "Keys are shown once" in first.stderr
    assert "SLOTGRAPH_BOOTSTRAP_SECRET_KEY is not a key of any app" in second.stderr
    assert "get 401" in second.stderr
    assert "slotgraph apps create NAME" in second.stderr
    assert "sk_tour" not in second.stderr  # a secret is never echoed
    assert "SLOTGRAPH_BOOTSTRAP_SECRET_KEY" not in third.stderr  # its own key: nothing to say


async def test_apps_settings_show_and_set(fresh_database: tuple[str, str]) -> None:
    _, url = fresh_database
    cli(url, "migrate")
    app_id = json.loads(cli(url, "apps", "create", "Shop").stdout)["app_id"]
    shown = json.loads(cli(url, "apps", "settings", app_id).stdout)
    assert shown["allowed_origins"] == []
    assert shown["rate_limits"] == {"public_per_minute": 600, "secret_per_minute": 6000}
    changed = json.loads(
        cli(
            url,
            "apps",
            "settings",
            app_id,
            'allowed_origins=["https://shop.example"]',
            "rate_limits.public_per_minute=120",
        ).stdout
    )
    assert changed["allowed_origins"] == ["https://shop.example"]
    assert changed["rate_limits"] == {"public_per_minute": 120, "secret_per_minute": 6000}
    assert json.loads(cli(url, "apps", "settings", app_id).stdout) == changed
    with pytest.raises(subprocess.CalledProcessError) as bad:
        cli(url, "apps", "settings", app_id, 'public_graphs=["group_owner"]')
    assert "never available to the public key" in bad.value.stderr
    # Refused by the service (the email templates' rule), each named; an unknown app said so.
    # Before, both ended in a Python traceback.
    templates = '{"customer.txt": "{{ 1 * 2 }}", "owner.txt": "{% for a in b %}{% endfor %}"}'
    with pytest.raises(subprocess.CalledProcessError) as bad:
        cli(url, "apps", "settings", app_id, f"notifications.templates={templates}")
    assert bad.value.stderr == (
        "invalid settings:\n"
        "  notifications.templates.customer.txt: `*` is not allowed in an app's template "
        "(docs/emails.md)\n"
        "  notifications.templates.owner.txt: {% for %} is not allowed in an app's template "
        "(docs/emails.md)\n"
    )
    unknown = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(subprocess.CalledProcessError) as bad:
        cli(url, "apps", "settings", unknown)
    assert bad.value.stderr == f"No app {unknown}. `slotgraph apps list` shows the apps.\n"
    assert json.loads(cli(url, "apps", "settings", app_id).stdout) == changed


async def test_apps_settings_refuses_a_rate_limit_above_the_ceiling_as_the_api_does(
    fresh_database: tuple[str, str],
) -> None:
    # Before: the command stored 1,001 where the operator's ceiling is 1,000 (PUT /v1/app said
    # 422), and the app then counted at 1,000 while its settings said 1,001.
    _, url = fresh_database
    cli(url, "migrate")
    app_id = json.loads(cli(url, "apps", "create", "Shop").stdout)["app_id"]
    ceiling = {"SLOTGRAPH_MAX_APP_RATE_LIMIT": "1000"}
    at = cli(url, "apps", "settings", app_id, "rate_limits.public_per_minute=1000", env=ceiling)
    assert json.loads(at.stdout)["rate_limits"]["public_per_minute"] == 1000
    with pytest.raises(subprocess.CalledProcessError) as bad:
        cli(url, "apps", "settings", app_id, "rate_limits.secret_per_minute=1001", env=ceiling)
    # The same words as PUT /v1/app's 422 (tests/api/test_app_settings.py)
    assert bad.value.stderr == (
        "invalid settings:\n"
        "  rate_limits.secret_per_minute: Input should be less than or equal to 1000 "
        "(this server's ceiling)\n"
    )
    shown = json.loads(cli(url, "apps", "settings", app_id).stdout)
    assert shown["rate_limits"] == {"public_per_minute": 1000, "secret_per_minute": 6000}


def test_apps_keys_are_added_and_revoked_in_their_own_app(fresh_database: tuple[str, str]) -> None:
    """`apps add-key` and `apps revoke-key` (the rotation itself, through a server: docs/
    operations.md's recipe, tests/system/test_operations_recipes.py). Before, neither existed."""
    _, url = fresh_database
    cli(url, "migrate")
    shop = json.loads(cli(url, "apps", "create", "Shop").stdout)["app_id"]
    other = json.loads(cli(url, "apps", "create", "Other").stdout)["app_id"]
    added = json.loads(cli(url, "apps", "add-key", shop, "public").stdout)
    assert set(added) == {"app_id", "key_id", "kind", "key"}
    assert added["kind"] == "public"
    assert added["key"].startswith("pk_")

    def keys(app_id: str) -> list[dict[str, object]]:
        listed = json.loads(cli(url, "apps", "list").stdout)
        return next(a["keys"] for a in listed if a["app_id"] == app_id)

    assert sorted(str(k["kind"]) for k in keys(shop)) == ["public", "public", "secret"]
    assert added["key"] not in cli(url, "apps", "list").stdout  # shown once, stored hashed
    # another app's key is not this app's to revoke, and stays live
    (theirs,) = [k["key_id"] for k in keys(other) if k["kind"] == "secret"]
    with pytest.raises(subprocess.CalledProcessError) as bad:
        cli(url, "apps", "revoke-key", shop, str(theirs))
    assert bad.value.stderr == (
        f"No key {theirs} in app {shop}. `slotgraph apps list` shows the keys.\n"
    )
    assert all(not k["revoked"] for k in keys(other))
    with pytest.raises(subprocess.CalledProcessError) as bad:
        cli(url, "apps", "revoke-key", shop, "sk_VXSt")  # a prefix is not the key's id
    assert bad.value.stderr == "not a key id: 'sk_VXSt'\n"
    unknown = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(subprocess.CalledProcessError) as bad:
        cli(url, "apps", "add-key", unknown, "secret")
    assert bad.value.stderr == f"No app {unknown}. `slotgraph apps list` shows the apps.\n"
    # the app's only secret key: revoked, and the command says what to do next
    (secret,) = [k["key_id"] for k in keys(shop) if k["kind"] == "secret"]
    done = cli(url, "apps", "revoke-key", shop, str(secret))
    assert json.loads(done.stdout)["revoked"] is True
    assert done.stderr == (
        f"slotgraph: app {shop} has no secret key left; `slotgraph apps add-key {shop} "
        "secret` makes one.\n"
    )
    (first,) = [k["revoked_at"] for k in keys(shop) if k["key_id"] == secret]
    assert first == json.loads(done.stdout)["revoked_at"]
    again = json.loads(cli(url, "apps", "revoke-key", shop, str(secret)).stdout)
    assert again["revoked_at"] == first  # revoked once; the first time stays
    assert not cli(url, "apps", "add-key", shop, "secret").stderr


def run_cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SLOTGRAPH_DATABASE_URL", "SLOTGRAPH_BOOTSTRAP_SECRET_KEY")
    }
    return subprocess.run(
        [sys.executable, "-m", "slotgraph.cli", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=HANG,
    )


def test_commands_say_which_database_is_missing(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args in (("apps", "list"), ("apps", "create", "X"), ("worker",)):
        done = run_cli(elsewhere, {}, *args)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert f"no database at the SQLite file {elsewhere}/data/slotgraph.db" in done.stderr
        assert "SLOTGRAPH_DATABASE_URL" in done.stderr
    assert list(elsewhere.iterdir()) == []  # and nothing was created there


def test_commands_use_the_configured_database_from_any_folder(
    fresh_database: tuple[str, str], tmp_path: Path
) -> None:
    backend, url = fresh_database
    env = {"SLOTGRAPH_DATABASE_URL": url}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    not_migrated = run_cli(tmp_path / "a", env, "apps", "list")
    assert not_migrated.returncode == 1
    # A SQLite file is not there until `migrate` makes it; a PostgreSQL database is, but empty.
    said = "there is no database" if backend == "sqlite" else "never migrated"
    assert said in not_migrated.stderr
    assert "slotgraph migrate" in not_migrated.stderr
    assert "Traceback" not in not_migrated.stderr
    assert run_cli(tmp_path / "a", env, "migrate").returncode == 0
    assert run_cli(tmp_path / "a", env, "apps", "create", "Clinic").returncode == 0
    listed = run_cli(tmp_path / "b", env, "apps", "list")
    assert listed.returncode == 0, listed.stderr
    assert [a["name"] for a in json.loads(listed.stdout)] == ["Clinic"]


def test_a_postgresql_database_that_does_not_exist_is_named(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/slotgraph_no_such_database"
    done = run_cli(tmp_path, {"SLOTGRAPH_DATABASE_URL": url}, "apps", "list")
    assert done.returncode == 1
    assert 'database "slotgraph_no_such_database" does not exist' in done.stderr
    assert "Traceback" not in done.stderr


def test_the_bootstrap_message_says_what_to_remove_and_that_is_enough(
    fresh_database: tuple[str, str],
) -> None:
    """The message and the README's tour said different things (the .db file; `rm -rf data`):
    what it names now is what a new start needs, done as it says, and nothing more."""
    backend, url = fresh_database
    with _port_taken(url) as env:
        subprocess.run(SERVE, env=env, capture_output=True, text=True, timeout=HANG)
        tour = {**env, "SLOTGRAPH_BOOTSTRAP_SECRET_KEY": "sk_tour"}
        told = subprocess.run(SERVE, env=tour, capture_output=True, text=True, timeout=HANG)
        if backend == "postgresql":
            assert (
                "or, to begin again with your key, use an empty database and start" in told.stderr
            )
            return
        db = Path(make_url(url).database or "").resolve()
        mail = db.parent / "mail" / "kept.eml"  # (data/mail's emails may stay)
        mail.parent.mkdir()
        mail.write_text("kept")
        command = f"rm -f {db} {db}-wal {db}-shm"
        said = " ".join(told.stderr.split())  # (the message may wrap)
        assert (
            f"or, to begin again with your key, stop the server, remove {db} and its -wal and "
            f"-shm files if there are any ({command}) and start again." in said
        ), told.stderr
        subprocess.run(["sh", "-c", command], check=True)
        again = subprocess.run(SERVE, env=tour, capture_output=True, text=True, timeout=HANG)
    assert "is not a key of any app" not in again.stderr
    (app,) = json.loads(cli(url, "apps", "list").stdout)
    assert "sk_tour" in {k["prefix"] for k in app["keys"]}  # the tour's key is the app's now
    assert mail.read_text() == "kept"


async def at_the_migration_before_the_newest(url: str) -> str:
    """Migrate the database at `url` to the migration before the newest; that one's name."""
    before = f"{int(head_revision() or 0) - 1:04d}"
    engine = create_engine(url)
    try:
        await migrate(engine, before)
    finally:
        await engine.dispose()
    return before


async def test_a_migration_kept_waiting_by_another_sessions_lock_says_so_and_changes_nothing(
    fresh_database: tuple[str, str],
) -> None:
    # Another session holds a lock every migration needs (PostgreSQL: the row of
    # alembic_version, which each migration updates, whatever tables it changes; SQLite: a
    # process holding the write lock). Past the lock timeout (PostgreSQL:
    # SLOTGRAPH_DB_LOCK_TIMEOUT_SECONDS; SQLite: its busy timeout, 30 s) `migrate` says what
    # kept it waiting, not a traceback, and the database is still at the migration before;
    # once the session ends it goes through.
    backend, url = fresh_database
    before = await at_the_migration_before_the_newest(url)
    env = os.environ | {"SLOTGRAPH_DATABASE_URL": url, "SLOTGRAPH_DB_LOCK_TIMEOUT_SECONDS": "1"}
    command = [sys.executable, "-m", "slotgraph.cli", "migrate"]
    if backend == "postgresql":
        holder = await asyncpg.connect(url)
        await holder.execute("BEGIN")
        await holder.execute("SELECT version_num FROM alembic_version FOR UPDATE")
    else:
        file = sqlite3.connect(make_url(url).database or "", isolation_level=None)
        file.execute("BEGIN IMMEDIATE")
    try:
        kept = subprocess.run(command, env=env, capture_output=True, text=True, timeout=HANG)
    finally:
        if backend == "postgresql":
            await holder.close()
        else:
            file.close()
    assert kept.returncode == 1, kept.stderr
    assert "Traceback" not in kept.stderr, kept.stderr
    assert "slotgraph: the migration of" in kept.stderr, kept.stderr
    assert "nothing was changed" in kept.stderr, kept.stderr
    engine = create_engine(url)
    try:
        assert await current_revision(engine) == before
    finally:
        await engine.dispose()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=HANG)
    assert done.returncode == 0, done.stderr
    assert "database is at head" in done.stderr


async def test_a_migration_cancelled_by_the_roles_statement_timeout_says_so() -> None:
    # PostgreSQL only (SQLite has no statement_timeout): the database's own setting cancels the
    # migration's statement; `migrate` says that, not that it waited for a lock. The statement
    # is made to last: it waits for alembic_version's row, held by another session, with
    # slotgraph's own lock timeout off.
    url = await create_postgres_database("slotgraph_system")
    try:
        before = await at_the_migration_before_the_newest(url)
        database = make_url(url).database
        admin = await asyncpg.connect(url)
        try:
            # for the sessions from now on (not this one)
            await admin.execute(f'ALTER DATABASE "{database}" SET statement_timeout = 1000')
            await admin.execute("BEGIN")
            await admin.execute("SELECT version_num FROM alembic_version FOR UPDATE")
            env = os.environ | {
                "SLOTGRAPH_DATABASE_URL": url,
                "SLOTGRAPH_DB_LOCK_TIMEOUT_SECONDS": "0",
            }
            command = [sys.executable, "-m", "slotgraph.cli", "migrate"]
            cut = subprocess.run(command, env=env, capture_output=True, text=True, timeout=HANG)
            await admin.execute("ROLLBACK")
            await admin.execute(f'ALTER DATABASE "{database}" RESET statement_timeout')
        finally:
            await admin.close()
        assert cut.returncode == 1, cut.stderr
        assert "Traceback" not in cut.stderr, cut.stderr
        assert "was cancelled by PostgreSQL (the role's statement_timeout" in cut.stderr, cut.stderr
        engine = create_engine(url)
        try:
            assert await current_revision(engine) == before
        finally:
            await engine.dispose()
    finally:
        await drop_postgres_database(url)


def test_a_lock_timeout_postgresql_refuses_is_refused_by_name(
    fresh_database: tuple[str, str],
) -> None:
    # PostgreSQL takes lock_timeout from 0 to 2^31-1 ms and refuses every connection that asks
    # for another: a negative SLOTGRAPH_DB_LOCK_TIMEOUT_SECONDS was "The database cannot be
    # reached" from every command and request. Now it is refused at start, naming the setting,
    # on both backends (a setting that is wrong on one is wrong on the other).
    _, url = fresh_database
    env = os.environ | {"SLOTGRAPH_DATABASE_URL": url, "SLOTGRAPH_DB_LOCK_TIMEOUT_SECONDS": "-1"}
    command = [sys.executable, "-m", "slotgraph.cli", "migrate"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=HANG)
    assert refused.returncode != 0, refused.stderr
    assert "db_lock_timeout_seconds" in refused.stderr, refused.stderr
    assert "greater than or equal to 0" in refused.stderr, refused.stderr


def test_a_reader_that_has_gone_ends_a_command_without_a_traceback(
    fresh_database: tuple[str, str],
) -> None:
    """`slotgraph apps list | head -1`: once `head` had gone, the listing ended in a
    BrokenPipeError's traceback. Here the reader has gone before the command writes (the pipe's
    reading end is closed), so the write fails every time, not only with a long listing."""
    _, url = fresh_database
    cli(url, "migrate")
    cli(url, "apps", "create", "Clinic")
    reading, writing = os.pipe()
    os.close(reading)
    env = {k: v for k, v in os.environ.items() if k != "SLOTGRAPH_BOOTSTRAP_SECRET_KEY"}
    try:
        listed = subprocess.run(
            [sys.executable, "-m", "slotgraph.cli", "apps", "list"],
            env=env | {"SLOTGRAPH_DATABASE_URL": url},
            stdout=writing,
            stderr=subprocess.PIPE,
            text=True,
            timeout=HANG,
        )
    finally:
        os.close(writing)
    assert listed.returncode == 1, listed.stderr
    assert "Traceback" not in listed.stderr, listed.stderr
    assert "BrokenPipeError" not in listed.stderr, listed.stderr
