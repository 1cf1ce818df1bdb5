"""A real HTTP receiver for webhook tests: records every request, answers from a script."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    script: list[int] = field(default_factory=list)  # status codes to answer, then 200
    delay: float = 0.0  # seconds to wait before answering (keeps deliveries in flight)
    # Requests after the first `answer_first` wait for `gate` (set: open) before being answered;
    # `arrived` counts every request as it comes in, held or not.
    answer_first: int = 0
    gate: threading.Event = field(default_factory=threading.Event)
    arrived: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.gate.set()

    def hold(self, *, after: int = 0) -> None:
        """Answer the next `after` requests, then hold every later one until `release()`."""
        with self.lock:
            self.answer_first = self.arrived + after
            self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def answer(self) -> int:
        with self.lock:
            return self.script.pop(0) if self.script else 200

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.json for r in self.requests]


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length).decode()
            with receiver.lock:
                receiver.arrived += 1
                held = receiver.arrived > receiver.answer_first
            if held:
                receiver.gate.wait()
            if receiver.delay:
                time.sleep(receiver.delay)
            status = receiver.answer()
            with receiver.lock:
                receiver.requests.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            payload = f'{{"received": true, "status": {status}}}'.encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender gave up (a worker stopped mid-send): what the test wants

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 1024  # the default backlog of 5 resets concurrent deliveries
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    receiver = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
