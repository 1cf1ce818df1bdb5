"""A clone without PostgreSQL: the suite leaves the PostgreSQL cases out and says so once (a
newcomer's `make test-quick` ended with 308 lines of one skip reason), and CI still refuses to
run without PostgreSQL (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.system

ROOT = Path(__file__).parent.parent
ONE_TEST = "tests/api/test_emails_locale.py::test_an_unknown_locale_is_422_and_books_nothing"


def pytest_run(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "SLOTGRAPH_TEST_POSTGRES_URL")}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*cmd, ONE_TEST],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_without_postgres_its_cases_are_left_out_and_said_once() -> None:
    done = pytest_run()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 1 deselected" in done.stdout, done.stdout
    assert "skipped" not in done.stdout
    assert done.stdout.count("SLOTGRAPH_TEST_POSTGRES_URL is not set") == 1, done.stdout


def test_in_ci_without_postgres_the_run_fails() -> None:
    done = pytest_run(CI="true")
    assert done.returncode != 0
    assert "1 passed" in done.stdout
    assert "CI must test on PostgreSQL" in done.stdout, done.stdout
