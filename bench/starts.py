"""What a process start costs in CPU (user + sys of the process and its children), as the suite
starts them: `python -m bench.starts [--postgres URL] [--rounds N]` (docs/testing.md, "Process
starts"). Each round, on a fresh database: `serve` from its start until /healthz answers, then
SIGTERM (`--workers 2` on PostgreSQL, as tests/system does); `apps create`; `worker` for 6 s.
To compare two trees, run it with PYTHONPATH set to each one's src/, alternating."""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

WORKER_SECONDS = 6.0


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "slotgraph.cli", *args]


def _serve(env: dict[str, str], cwd: str, workers: str) -> None:
    port = _port()
    proc = subprocess.Popen(
        _cli("serve", "--port", str(port), "--workers", workers), env=env, cwd=cwd
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as answer:
                    if answer.status == 200:
                        return
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit("serve exited before it answered") from None
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()


def _worker(env: dict[str, str], cwd: str) -> None:
    proc = subprocess.Popen(_cli("worker"), env=env, cwd=cwd)
    time.sleep(WORKER_SECONDS)
    proc.send_signal(signal.SIGTERM)
    proc.wait()


def _psql(admin: str, sql: str) -> None:
    subprocess.run(["psql", admin, "-qc", sql], check=True)


def one_round(postgres: str | None) -> dict[str, float]:
    """CPU seconds of each start, on a database of its own."""
    cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        name = f"slotgraph_starts_{uuid.uuid4().hex[:8]}"
        url = f"{postgres.rsplit('/', 1)[0]}/{name}" if postgres else f"sqlite:///{tmp}/s.db"
        if postgres:
            _psql(postgres, f"CREATE DATABASE {name}")
        env = {
            **os.environ,
            "SLOTGRAPH_DATABASE_URL": url,
            "SLOTGRAPH_BOOTSTRAP_SECRET_KEY": "sk_starts",
            "SLOTGRAPH_LOG_LEVEL": "warning",
        }
        try:
            steps = [
                ("serve", lambda: _serve(env, tmp, "2" if postgres else "1")),
                (
                    "apps create",
                    lambda: subprocess.run(
                        _cli("apps", "create", "x"),
                        env=env,
                        cwd=tmp,
                        check=True,
                        stdout=subprocess.DEVNULL,
                    ),
                ),
                ("worker (6 s)", lambda: _worker(env, tmp)),
            ]
            for what, run in steps:
                before = _children_cpu()
                run()
                cpu[what] = _children_cpu() - before
        finally:
            if postgres:
                _psql(postgres, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", help="an admin URL (postgresql://postgres@127.0.0.1/test)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    backend = "postgresql" if args.postgres else "sqlite"
    for _ in range(args.rounds):
        cpu = one_round(args.postgres)
        load = os.getloadavg()[0]
        print(backend, "  ".join(f"{k} {v:.2f} s" for k, v in cpu.items()), f"(load {load:.1f})")


if __name__ == "__main__":
    main()
