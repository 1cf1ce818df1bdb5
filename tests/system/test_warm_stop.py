"""SIGTERM stops `slotgraph serve` and `slotgraph worker` promptly while the warm-up thread is
still importing.

A started process imports, in a thread, what its database says it will use soon (warm.py). A
stop can come at any moment of that: the thread is a daemon, so neither the interpreter's exit
(`slotgraph worker` returns from asyncio.run; a non-daemon thread would be waited for) nor
uvicorn's stop waits for it. To hold the thread inside an import when the stop comes, the
process runs with stand-ins for icalendar and aiohttp (the first library a booking page, and a
webhook endpoint, warm) first on its path, whose import never ends; a process that has no
request to serve and nothing to send imports neither otherwise
(tests/system/test_start_imports.py)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.system.conftest import start_server, start_worker, stop_server, two_on_postgresql

pytestmark = pytest.mark.system

STAND_IN = """\
import os, threading
with open(os.environ["WARM_STOP_MARKER"], "a") as marker:
    marker.write(f"{os.getpid()}\\n")
threading.Event().wait()  # an import that has not ended when the stop comes
"""


async def _a_page_and_an_endpoint(url: str, backend: str, tmp_path: Path) -> None:
    """What makes a server warm a page's libraries, and a worker the webhooks' (no booking: no
    event, nothing to send)."""
    env = {"SLOTGRAPH_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}
    server = await start_server(url, backend, tmp_path / "first.log", "--no-worker", env=env)
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=server.headers()) as http:
            r = await http.post("/v1/resources", json={"name": "Room", "timezone": "UTC"})
            assert r.status_code == 201, r.text
            page = {
                "slug": "room",
                "title": "Book the room",
                "resource_ids": [r.json()["resource_id"]],
                "durations": ["PT30M"],
            }
            assert (await http.post("/v1/pages", json=page)).status_code == 201
            hook = {"url": "http://127.0.0.1:9/hook"}
            assert (await http.post("/v1/webhooks", json=hook)).status_code == 201
    finally:
        stop_server(server)


def _stand_ins(tmp_path: Path) -> tuple[dict[str, str], Path]:
    stand_ins = tmp_path / "stand-ins"
    stand_ins.mkdir()
    for library in ("icalendar", "aiohttp"):
        (stand_ins / f"{library}.py").write_text(STAND_IN)
    marker = tmp_path / "importing"
    return {"PYTHONPATH": str(stand_ins), "WARM_STOP_MARKER": str(marker)}, marker


async def _stopped_while_importing(
    process: subprocess.Popen[bytes], processes: int, marker: Path, log: Path
) -> float:
    """Once `processes` warm-up threads are inside the stand-in, SIGTERM; the seconds it took
    the process to end (an assertion error after 60 s)."""
    deadline = time.monotonic() + 90  # a hang guard, not a speed
    while not marker.exists() or len(marker.read_text().splitlines()) < processes:
        assert time.monotonic() < deadline, log.read_text()
        assert process.poll() is None, log.read_text()
        await asyncio.sleep(0.1)
    started = time.monotonic()
    process.terminate()
    for _ in range(600):
        if process.poll() is not None:
            break
        await asyncio.sleep(0.1)
    assert process.poll() is not None, f"still up 60 s after SIGTERM\n{log.read_text()}"
    assert "Traceback" not in log.read_text()
    return time.monotonic() - started


async def test_a_stop_while_the_warm_up_imports_ends_the_server_promptly(
    fresh_database: tuple[str, str], tmp_path: Path
) -> None:
    backend, url = fresh_database
    await _a_page_and_an_endpoint(url, backend, tmp_path)
    env, marker = _stand_ins(tmp_path)
    log = tmp_path / "server.log"
    # Two server processes on PostgreSQL: uvicorn's supervisor stops its children, each with its
    # warm-up importing; one on SQLite.
    processes = two_on_postgresql(backend)
    server = await start_server(url, backend, log, "--no-worker", env=env, workers=processes)
    try:
        waited = await _stopped_while_importing(server.process, processes, marker, log)
    finally:
        stop_server(server)
    # uvicorn's supervisor (--workers 2) exits 0; a single process raises the SIGTERM it caught
    # again once it has stopped (uvicorn/server.py capture_signals)
    assert server.process.returncode in (0, -signal.SIGTERM), log.read_text()
    assert waited < 20, waited  # the stop itself: a few seconds at most on a loaded machine


async def test_a_stop_while_the_warm_up_imports_ends_the_worker_promptly(
    fresh_database: tuple[str, str], tmp_path: Path
) -> None:
    backend, url = fresh_database
    await _a_page_and_an_endpoint(url, backend, tmp_path)
    env, marker = _stand_ins(tmp_path)
    log = tmp_path / "worker.log"
    worker = start_worker(url, log, env)
    try:
        waited = await _stopped_while_importing(worker, 1, marker, log)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, log.read_text()
    assert waited < 20, waited
