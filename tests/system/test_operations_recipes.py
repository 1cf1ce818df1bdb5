"""docs/operations.md's key rotation, run as an operator runs it: its shell block, copied out of
the page as it stands, pasted into bash beside a real `slotgraph serve`, with `slotgraph` on the
PATH and SLOTGRAPH_DATABASE_URL set, as the page says. Before 2026-12-01 there was nothing to
run: no command gave an app a second key or revoked one (`apps list` showed a `revoked` flag
that nothing set), so a leaked secret key could only be kept. What each step should print is
written out here from the page's `# ->` comments, not read from the server."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.receiver import Receiver, running_receiver
from tests.system.conftest import SECRET, Server, serving

pytestmark = pytest.mark.system

OPERATIONS = Path(__file__).parents[2] / "docs" / "operations.md"
STEP = re.compile(r"^# (\d)\. ")


def rotation_block() -> str:
    """The ```sh block under "## Rotating keys and secrets"."""
    section = OPERATIONS.read_text().split("## Rotating keys and secrets", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def marked(block: str, url: str) -> str:
    """The block against `url` retiring the test server's secret key, with a marker echoed before
    each numbered step, so what each printed can be told apart."""
    assert "export SG=http://127.0.0.1:8000 OLD=sk_..." in block  # what the reader fills in
    block = block.replace("http://127.0.0.1:8000", url).replace("OLD=sk_...", f"OLD={SECRET}")
    lines = []
    for line in block.splitlines():
        if found := STEP.match(line):
            lines.append(f"echo; echo '@@ step {found.group(1)}'")
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
async def ops_server(fresh_database: tuple[str, str], tmp_path: Path) -> AsyncIterator[Server]:
    env = {"SLOTGRAPH_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true", "SLOTGRAPH_MAIL_DIR": str(tmp_path)}
    async with serving(fresh_database, tmp_path, env=env) as server:
        yield server


@pytest.mark.skipif(shutil.which("curl") is None, reason="the recipe's requests are curl commands")
async def test_the_key_rotation_recipe_does_what_it_says(
    ops_server: Server, receiver: Receiver, tmp_path: Path
) -> None:
    # In use before the rotation (so the server has the old key in its 30 s cache), as a key
    # being retired is: a webhook made with it, which step 5 rotates.
    async with httpx.AsyncClient(base_url=ops_server.url, headers=ops_server.headers()) as http:
        made = await http.post("/v1/webhooks", json={"url": receiver.url, "events": ["*"]})
        assert made.status_code == 201, made.text
        old_secret = made.json()["secret"]
    env = {
        **os.environ,
        "SLOTGRAPH_DATABASE_URL": ops_server.database_url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    ran = subprocess.run(
        ["bash", "-c", marked(rotation_block(), ops_server.url)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        env=env,
    )
    assert ran.returncode == 0, (ran.stdout, ran.stderr)
    steps = dict(
        (int(part.split("\n", 1)[0]), part.split("\n", 1)[1].strip().splitlines())
        for part in ran.stdout.split("@@ step ")[1:]
    )
    assert sorted(steps) == [1, 2, 3, 4, 5], ran.stdout
    assert steps[1] == []  # into $APP and $OLD_ID
    (app_id,) = steps[2]  # "-> the app's id"
    assert re.fullmatch(r"[0-9a-f-]{36}", app_id), steps[2]
    assert steps[3] == ["True"]  # revoked
    assert steps[4] == ["401", app_id]  # the old key refused, the new one the app's
    secret, status = steps[5]  # a new signing secret; the test event pending
    assert secret.startswith("whsec_")
    assert secret != old_secret
    assert status == "pending"

    # The test event arrives signed by the new secret and, for the day after, the old one.
    deadline = time.monotonic() + 60
    while not any(e["type"] == "webhook.test" for e in receiver.events()):
        assert time.monotonic() < deadline, receiver.events()
        await asyncio.sleep(0.2)
    (sent,) = [r for r in receiver.requests if r.json["type"] == "webhook.test"]
    assert len(sent.headers["webhook-signature"].split()) == 2
    Webhook(secret).verify(sent.body, sent.headers)
    Webhook(old_secret).verify(sent.body, sent.headers)

    # What `apps list` shows after: the old key revoked, with when; the new one live.
    listed = subprocess.run(
        ["slotgraph", "apps", "list"], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert f'"prefix": "{SECRET[:7]}"' in listed
    assert '"revoked": true' in listed
    assert '"revoked_at": "20' in listed


def sqlite_blocks() -> tuple[str, str]:
    """The two ```sh blocks under "## Backups": back up while serving, restore."""
    section = OPERATIONS.read_text().split("## Backups\n", 1)[1].split("\n## ", 1)[0]
    backup, restore = re.findall(r"^```sh\n(.*?)^```", section, re.S | re.M)
    return backup, restore


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the recipe's first line is sqlite3's")
async def test_the_sqlite_backup_recipe_backs_up_while_serving_and_restores(
    tmp_path: Path,
) -> None:
    """The SQLite backup, taken as the page says while the server takes bookings, holds the
    bookings made before it, whole; restored as the page says, the server starts on it and
    serves exactly those. (A plain `cp` of the file, which the page warns against, misses what
    is still in the -wal file.)"""
    backup, restore = sqlite_blocks()
    (tmp_path / "data").mkdir()
    database = ("sqlite", f"sqlite:///{tmp_path / 'data' / 'slotgraph.db'}")
    booked: list[int] = []
    async with (
        serving(database, tmp_path, env={"SLOTGRAPH_MAIL_DIR": str(tmp_path / "mail")}) as server,
        httpx.AsyncClient(base_url=server.url, headers=server.headers(), timeout=60) as http,
    ):
        made = await http.post("/v1/resources", json={"name": "Room", "timezone": "UTC"})
        resource = made.json()["resource_id"]
        slots, twenty = asyncio.Semaphore(8), asyncio.Event()

        async def book(i: int) -> None:
            async with slots:
                start = f"2031-01-{i // 20 + 1:02d}T{i % 20:02d}:00:00Z"
                end = start.replace(":00:00Z", ":30:00Z")
                r = await http.post(
                    "/v1/bookings",
                    json={
                        "resource_id": resource,
                        "start_time": start,
                        "end_time": end,
                        "customer": {"name": "Ann", "email": f"ann{i}@example.com"},
                    },
                )
                booked.append(r.status_code)
                if len(booked) == 20:
                    twenty.set()

        load = asyncio.gather(*(book(i) for i in range(120)))
        await asyncio.wait_for(twenty.wait(), 120)
        ran = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-c", backup],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        await load
        assert ran.returncode == 0, (ran.stdout, ran.stderr)
        assert ran.stdout.split() == ["ok"]  # "# -> ok"
        assert booked == [201] * 120  # the backup refused and held up nothing
    with sqlite3.connect(tmp_path / "data" / "backup.db") as copy:
        (kept,) = copy.execute("SELECT count(*) FROM bookings").fetchone()
    assert 20 <= kept < 120, kept  # the moment of the backup, not the end of the load
    restored = subprocess.run(["bash", "-c", restore], cwd=tmp_path, capture_output=True)
    assert restored.returncode == 0, restored.stderr
    async with (
        serving(database, tmp_path, env={"SLOTGRAPH_MAIL_DIR": str(tmp_path / "mail")}) as server,
        httpx.AsyncClient(base_url=server.url, headers=server.headers(), timeout=60) as http,
    ):
        assert (await http.get("/readyz")).status_code == 200
        seen, cursor = 0, None
        while True:
            page = await http.get(
                "/v1/bookings",
                params={"limit": 200, "cursor": cursor} if cursor else {"limit": 200},
            )
            assert page.status_code == 200, page.text
            seen += len(page.json()["data"])
            cursor = page.json()["next_cursor"]
            if not cursor:
                break
        assert seen == kept
