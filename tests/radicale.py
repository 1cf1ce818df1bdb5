"""A real CalDAV server for the calendar tests: Radicale on loopback, a temporary storage
folder, htpasswd users. A test gets its own calendar, read and written with the `caldav`
library as a calendar program would."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from caldav.collection import Calendar
from caldav.davclient import DAVClient

USER, PASSWORD = "dentist", "correct horse"


@dataclass
class Radicale:
    url: str
    folder: Path
    process: subprocess.Popen[bytes]

    def client(self, password: str = PASSWORD) -> DAVClient:
        return DAVClient(url=self.url, username=USER, password=password, enable_rfc6764=False)

    def new_calendar(self) -> Calendar:
        """A fresh calendar of USER; its URL is what slotgraph connects to."""
        name = f"cal-{uuid.uuid4().hex[:10]}"
        principal = self.client().principal()
        return principal.make_calendar(name=name, cal_id=name)

    async def put_calendar(self, http: httpx.AsyncClient, name: str, text: str) -> str:
        """A whole calendar of USER written at once (one iCalendar text, as a calendar program
        imports a file); its URL is what slotgraph connects to."""
        url = f"{self.url}{USER}/{name}/"
        put = await http.put(
            url, content=text, auth=(USER, PASSWORD), headers={"content-type": "text/calendar"}
        )
        assert put.status_code == 201, put.text
        return url

    def set_password(self, password: str) -> None:
        """Change USER's password on the server (Radicale reads the file on each request)."""
        (self.folder / "users").write_text(f"{USER}:{password}\n")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_radicale(folder: Path) -> Iterator[Radicale]:
    port = _free_port()
    (folder / "users").write_text(f"{USER}:{PASSWORD}\n")
    (folder / "config").write_text(
        f"""[server]
hosts = 127.0.0.1:{port}
[auth]
type = htpasswd
htpasswd_filename = {folder / "users"}
htpasswd_encryption = plain
delay = 0
[storage]
filesystem_folder = {folder / "storage"}
[web]
type = none
[logging]
level = warning
"""
    )
    log = (folder / "radicale.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--config", str(folder / "config")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Radicale(f"http://127.0.0.1:{port}/", folder, process)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"radicale did not start: {(folder / 'radicale.log').read_text()}"
                    ) from None
                time.sleep(0.05)
        yield server
    finally:
        if process.poll() is None:
            server.stop()
        log.close()
