"""What a server's first page, /readyz, webhook and email cost the requests around them, after a
restart on a database that has them (slotgraph/warm.py): `python -m bench.first_use [--rounds N]
[--before SRC --after SRC]`. Each round, on a fresh SQLite database: `serve` (its worker
in-process) makes a resource, a booking page, a webhook endpoint (to bench.receiver) and a
booking, and stops; `serve` starts again, answers /healthz and is left idle 1 s (as a server is
before its load balancer sends it traffic). Then, timed: the first and second GET of the page and
of /readyz, and, while a client polls /healthz back to back, a new booking, whose webhook and
email the worker sends at once: the slowest /healthz answer of the 2 s after it (the event loop
blocked by a first import shows there) against the slowest of the 2 s before it. With --before
and --after (two src/ trees), the rounds alternate between them."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

KEY = "sk_first_use"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(url: str, data: object | None = None) -> tuple[int, float]:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, method="GET" if body is None else "POST")
    req.add_header("Authorization", f"Bearer {KEY}")
    req.add_header("content-type", "application/json")
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as answer:
        answer.read()
        return answer.status, time.perf_counter() - start


def _serve(env: dict[str, str], cwd: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "slotgraph.cli", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,  # the first start's keys
    )
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            if _call(f"{base}/healthz")[0] == 200:
                return proc, base
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("serve exited before it answered") from None
            time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait()


def _booking(base: str, room: str, hour: int) -> None:
    status, _ = _call(
        f"{base}/v1/bookings",
        {
            "resource_id": room,
            "start_time": f"2031-01-02T{hour:02d}:00:00Z",
            "end_time": f"2031-01-02T{hour:02d}:30:00Z",
            "customer": {"name": "Ann", "email": "ann@example.com"},
        },
    )
    assert status == 201


def _slowest_healthz(base: str, seconds: float) -> float:
    worst, end = 0.0, time.monotonic() + seconds
    while time.monotonic() < end:
        worst = max(worst, _call(f"{base}/healthz")[1])
    return worst


def one_round(src: str | None, receiver: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "SLOTGRAPH_DATABASE_URL": f"sqlite:///{tmp}/s.db",
            "SLOTGRAPH_BOOTSTRAP_SECRET_KEY": KEY,
            "SLOTGRAPH_LOG_LEVEL": "warning",
            "SLOTGRAPH_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
            "SLOTGRAPH_WORKER_POLL_SECONDS": "0.05",
        }
        if src:
            env["PYTHONPATH"] = src
        proc, base = _serve(env, tmp)
        try:
            _call(f"{base}/v1/webhooks", {"url": receiver})
            room = json.loads(
                urllib.request.urlopen(
                    urllib.request.Request(
                        f"{base}/v1/resources",
                        data=json.dumps({"name": "Room", "timezone": "UTC"}).encode(),
                        headers={
                            "Authorization": f"Bearer {KEY}",
                            "content-type": "application/json",
                        },
                    )
                ).read()
            )["resource_id"]
            _call(
                f"{base}/v1/pages",
                {"slug": "room", "title": "Room", "resource_ids": [room], "durations": ["PT30M"]},
            )
            _booking(base, room, 9)
            time.sleep(1.0)  # its webhook and email sent
        finally:
            _stop(proc)
        proc, base = _serve(env, tmp)
        try:
            time.sleep(1.0)  # up and idle
            out: dict[str, float] = {}
            out["page first"] = _call(f"{base}/book/room")[1]
            out["page second"] = _call(f"{base}/book/room")[1]
            out["readyz first"] = _call(f"{base}/readyz")[1]
            out["readyz second"] = _call(f"{base}/readyz")[1]
            out["healthz worst, quiet"] = _slowest_healthz(base, 2.0)
            done = threading.Thread(target=_booking, args=(base, room, 11))
            done.start()
            out["healthz worst, first webhook+email"] = _slowest_healthz(base, 2.0)
            done.join()
            return {k: v * 1000 for k, v in out.items()}
        finally:
            _stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before")
    parser.add_argument("--after")
    args = parser.parse_args()
    port = _port()
    receiver = subprocess.Popen([sys.executable, "-m", "bench.receiver", str(port)])
    trees = {"before": args.before, "after": args.after} if args.before else {"this": None}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    try:
        time.sleep(0.5)
        for _ in range(args.rounds):
            for name, src in trees.items():
                one = one_round(src, f"http://127.0.0.1:{port}/hook")
                results[name].append(one)
                load = os.getloadavg()[0]
                print(name, "  ".join(f"{k} {v:.1f}" for k, v in one.items()), f"(load {load:.1f})")
    finally:
        receiver.terminate()
        receiver.wait()
    for name, rounds in results.items():
        print(f"{name} medians (ms):")
        for key in rounds[0]:
            print(f"  {key}: {statistics.median(r[key] for r in rounds):.1f}")


if __name__ == "__main__":
    main()
