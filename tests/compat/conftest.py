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

from tests.system.conftest import SECRET, Server, fresh_database, start_server, stop_server

HERE = Path(__file__).parent
MODULES = HERE / "node_modules"
__all__ = ["fresh_database"]  # the fixture, shared with tests/system


def need(what: str, ok: bool) -> None:
    if ok:
        return
    message = f"{what} is missing (run .ci/run, or `npm ci` in tests/compat)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


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


@pytest.fixture
async def live(fresh_database: tuple[str, str], tmp_path: Path) -> AsyncIterator[Live]:
    need("node", shutil.which("node") is not None)
    need("tests/compat/node_modules", (MODULES / "timekit-sdk").is_dir())
    backend, url = fresh_database
    log = tmp_path / "server.log"
    server = await start_server(url, backend, log)
    try:
        keys = bootstrap_keys(log)
        yield Live(server, keys["secret_key"], keys["public_key"])
    finally:
        stop_server(server)


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
