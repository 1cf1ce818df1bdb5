"""schemathesis against a live `slotgraph serve`, on each backend, with the secret and public key.

Every check is on (`--checks all`), every phase runs (examples, coverage, fuzzing and the
stateful phase, which chains create -> read -> change -> delete through the document's links),
and the number of examples per operation is bounded so a run takes well under two minutes. The
run must find nothing: no 5xx, no answer that differs from /openapi.json, no undocumented
status. A case it finds becomes a plain test (tests/api/test_openapi_regressions.py).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from slotgraph.appsettings import DEFAULT_PUBLIC_GRAPHS
from tests.system.conftest import start_server, stop_server

pytestmark = pytest.mark.system

CONFIG = Path(__file__).with_name("schemathesis.toml")

# caldav's HTTP client (niquests) installs urllib3-future over urllib3, and its pool container
# has no `.keys()`: schemathesis's count of open connections (used only to resend a request once
# when a keep-alive connection was dropped) fails on every request. Counting none keeps that
# resend and changes nothing else.
_CLI = """
import sys
import schemathesis.transport.requests as transport
transport._count_opened_connections = lambda session: 0
from schemathesis.cli import schemathesis
sys.exit(schemathesis())
"""

SECRET_EXAMPLES = 6
PUBLIC_EXAMPLES = 3


def _slotgraph(database_url: str, *args: str) -> str:
    env = {**os.environ, "SLOTGRAPH_DATABASE_URL": database_url, "SLOTGRAPH_LOG_LEVEL": "warning"}
    cmd = [sys.executable, "-m", "slotgraph.cli", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


# What the schemathesis process inherits: enough to run Python, and CI (Hypothesis picks its
# settings profile by it), nothing else. requests reads the whole environment for proxy
# settings on every request (a few thousand per run), which was a tenth of schemathesis's CPU
# with pytest's environment (docs/testing.md).
_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", "CI")


def _schemathesis(
    url: str, key: str, examples: int, workdir: Path, *, report: bool = False
) -> subprocess.CompletedProcess[str]:
    """One run. `report`: also write the NDJSON report (every request and answer: 16 MB for the
    secret key's run, a sixth of its CPU), which only a failure needs (_failures)."""
    cmd = [
        sys.executable,
        "-c",
        _CLI,
        "--config-file",
        str(CONFIG),
        "run",
        f"{url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(examples),
        "--seed",
        "20261129",
        "--no-shrink",
        # one worker: CPython 3.11 can fail "AST constructor recursion depth mismatch" when
        # Hypothesis parses lambdas in two threads at once
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        *(("--report", "ndjson", "--report-dir", str(workdir)) if report else ()),
    ]
    env = {name: os.environ[name] for name in _ENVIRONMENT if name in os.environ}
    return subprocess.run(
        cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _failures(workdir: Path) -> str:
    """Each distinct failure once: check, operation, request and answer (from the NDJSON report;
    the console report repeats bodies of many kilobytes)."""
    lines: list[str] = []
    seen: set[tuple[str, str]] = set()
    for report in sorted(workdir.glob("*.ndjson")):
        for line in report.read_text().splitlines():
            finished = json.loads(line).get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished["recorder"]
            for case_id, checks in recorder.get("checks", {}).items():
                for check in checks:
                    if check["status"] != "failure":
                        continue
                    failure = check["failure_info"]["failure"]
                    key = (failure["code"], failure["operation"])
                    if key in seen:
                        continue
                    seen.add(key)
                    lines.append(f"{failure['code']} {failure['operation']}: {failure['message']}")
                    interaction = recorder["interactions"].get(case_id)
                    if interaction:
                        lines.append(f"  {_request(interaction['request'])}")
                        lines.append(f"  -> {_response(interaction.get('response'))}")
    return "\n".join(lines)


def _request(request: dict[str, Any]) -> str:
    body = request.get("body") or {}
    raw = base64.b64decode(body["$base64"])[:400] if "$base64" in body else b""
    return f"{request['method']} {request['uri'][:400]} {raw!r}"


def _response(response: dict[str, Any] | None) -> str:
    if not response:
        return "(no answer)"
    content = response.get("content") or {}
    raw = base64.b64decode(content["$base64"])[:400] if "$base64" in content else b""
    return f"{response['status_code']} {raw!r}"


async def _settle_app(url: str, secret_key: str) -> None:
    """The app's settings as a run needs them: every field set (a run may have changed any),
    the rate limits lifted (thousands of requests in a minute would be answered 429)."""
    settings = {
        "allowed_origins": [],
        "public_graphs": list(DEFAULT_PUBLIC_GRAPHS),
        "rate_limits": {"public_per_minute": 1_000_000, "secret_per_minute": 1_000_000},
        "notifications": {"customer": True, "owner": True, "templates": {}},
        "require_if_match": False,
    }
    async with httpx.AsyncClient(base_url=url) as http:
        r = await http.put(
            "/v1/app", json=settings, headers={"Authorization": f"Bearer {secret_key}"}
        )
        assert r.status_code == 200, r.text
        assert {k: r.json()[k] for k in settings} == settings


async def test_the_live_server_answers_as_its_document_says(
    fresh_database: tuple[str, str], tmp_path: Path
) -> None:
    backend, url = fresh_database
    _slotgraph(url, "migrate")
    keys = json.loads(_slotgraph(url, "apps", "create", "schemathesis"))
    # schemathesis sends bad credentials on purpose, hundreds a minute from one address: lift the
    # server's bad-key limit too, or those would answer 429 before they could answer 401; and
    # the ceiling of an app's rate limits, which _settle_app lifts to the schema's most
    bad_keys = {"SLOTGRAPH_BAD_KEY_LIMIT": "1000000", "SLOTGRAPH_MAX_APP_RATE_LIMIT": "1000000"}
    server = await start_server(url, backend, tmp_path / "server.log", env=bad_keys)
    try:
        for key, examples in (
            (keys["secret_key"], SECRET_EXAMPLES),
            (keys["public_key"], PUBLIC_EXAMPLES),
        ):
            kind = "secret" if key == keys["secret_key"] else "public"
            # Before each run, not once: the secret key's run fuzzes PUT /v1/app too, and left
            # the public key at a limit of 600 a minute, so the public run's searches, resource
            # reads and /v2 reads (11 operations) were answered 429 and their logic not tested.
            await _settle_app(server.url, keys["secret_key"])
            done = _schemathesis(server.url, key, examples, tmp_path)
            if done.returncode != 0:  # again, the same cases (one seed), now with the report
                await _settle_app(server.url, keys["secret_key"])
                _schemathesis(server.url, key, examples, tmp_path, report=True)
            report = _failures(tmp_path) or done.stdout[-6000:]
            assert done.returncode == 0, f"{backend}, {kind} key:\n{report}"
            assert "Tested: 0" not in done.stdout
    finally:
        stop_server(server)
