"""bench/inprocess.py leaves nothing behind in the temporary directory: its SQLite file's folder
and the metrics' folder (PROMETHEUS_MULTIPROC_DIR) are removed when a run ends, and when it
fails. Before, every run left a metrics folder (`sg-inprocess-*`) there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _bench(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env |= {"TMPDIR": str(tmp), "SLOTGRAPH_INPROCESS_DB": "slotgraph_no_such_bench"}
    return subprocess.run(
        [sys.executable, "-m", "bench.inprocess", "run", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_run_leaves_no_folder_behind(tmp_path: Path) -> None:
    done = _bench(tmp_path, "create-sqlite", "2")
    assert done.returncode == 0, done.stderr
    assert "create-sqlite: CPU" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_failed_run_leaves_no_folder_behind(tmp_path: Path) -> None:
    # No `load` was run for this database: its scenarios' file is missing, and the run fails.
    done = _bench(tmp_path, "one", "1")
    assert done.returncode != 0
    assert "slotgraph_no_such_bench.json" in done.stderr
    assert list(tmp_path.iterdir()) == []
