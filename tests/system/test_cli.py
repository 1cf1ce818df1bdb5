"""The command line: migrate, apps create/list, and the keys serve prints on a fresh database."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.system.conftest import start_server, stop_server

pytestmark = pytest.mark.system


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SLOTGRAPH_BOOTSTRAP_SECRET_KEY"}
    env["SLOTGRAPH_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "slotgraph.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
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


def test_serve_prints_new_keys_once(fresh_database: tuple[str, str]) -> None:
    _, url = fresh_database
    with socket.socket() as taken:  # serve bootstraps, then cannot bind this port and exits
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {k: v for k, v in os.environ.items() if k != "SLOTGRAPH_BOOTSTRAP_SECRET_KEY"}
        env |= {"SLOTGRAPH_DATABASE_URL": url, "SLOTGRAPH_PORT": str(taken.getsockname()[1])}
        cmd = [sys.executable, "-m", "slotgraph.cli", "serve"]
        first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert "Keys are shown once" in first.stderr
    keys = json.loads(first.stderr[first.stderr.index("{") : first.stderr.index("}") + 1])
    assert keys["secret_key"].startswith("sk_")
    assert "Keys are shown once" not in second.stderr
    assert keys["secret_key"] not in second.stderr


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
