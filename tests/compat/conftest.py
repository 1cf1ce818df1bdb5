"""Timekit's real npm packages against a real slotgraph server.

`.ci/run` installs them with `npm ci` (package.json and package-lock.json here). Without them a
laptop run skips these tests with a message; CI fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from slotgraph.db.engine import create_engine
from tests.chromium import need as skip_or_fail
from tests.conftest import BACKENDS, create_postgres_database, drop_postgres_database
from tests.system.conftest import SECRET, Server, start_server, stop_server

HERE = Path(__file__).parent
MODULES = HERE / "node_modules"


def need(what: str, ok: bool) -> None:
    skip_or_fail(what, ok, "run .ci/run, or `npm ci` in tests/compat")


@dataclass
class Live:
    server: Server
    secret_key: str
    public_key: str

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TK_BASE_URL": self.server.url,
            "TK_SECRET_KEY": self.secret_key,
            "TK_PUBLIC_KEY": self.public_key,
        }


def bootstrap_keys(log: Path) -> dict[str, Any]:
    """The keys `slotgraph serve` printed when it created the default app."""
    text = log.read_text()
    start = text.index("{", text.index("Created the default app"))
    keys, _ = json.JSONDecoder().raw_decode(text[start:])
    assert keys["secret_key"] == SECRET
    return dict(keys)


@pytest.fixture(scope="module", params=BACKENDS)
async def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Live]:
    """One real server per backend for a whole module: the scenarios make their own data."""
    need("node", shutil.which("node") is not None)
    need("tests/compat/node_modules", (MODULES / "timekit-sdk").is_dir())
    backend: str = request.param
    tmp = tmp_path_factory.mktemp(f"compat-{backend}")
    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'slotgraph.db'}"
    else:
        url = await create_postgres_database("slotgraph_compat")
    log = tmp / "server.log"
    try:
        server = await start_server(url, backend, log)
    except RuntimeError:  # not ready in 30 s on a loaded machine: once more (the log keeps
        # the keys the first start printed)
        server = await start_server(url, backend, log)
    try:
        keys = bootstrap_keys(log)
        yield Live(server, keys["secret_key"], keys["public_key"])
    finally:
        stop_server(server)
        if backend == "postgresql":
            await drop_postgres_database(url)


def run_node(live: Live, script: str) -> dict[str, Any]:
    """Run one scenario; its assertions run in Node, its last stdout line is its result."""
    done = subprocess.run(
        ["node", str(HERE / "scenarios" / script)],
        env=live.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stderr}\n{done.stdout}"
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


async def rows(live: Live, sql: str, **params: Any) -> list[Any]:
    """Ask the server's database directly."""
    engine = create_engine(live.server.database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


def id_list(live: Live, made: list[Any]) -> str:
    """An SQL list of ids (or of dicts with an "id") as this backend stores UUIDs."""
    values = [m["id"] if isinstance(m, dict) else m for m in made]
    if live.server.backend == "sqlite":
        values = [v.replace("-", "") for v in values]
    return ", ".join(f"'{v}'" for v in values)
