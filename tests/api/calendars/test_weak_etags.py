"""A removal against a server without strong ETags (GMX sends weak ones), on both backends: a real
Radicale behind a tiny real proxy that turns every ETag weak, in headers and in the listings.

A weak ETag never matches `If-Match`, so the removal's DELETE there is unconditional. Before, it
deleted what its listing named, even when the same calendar had been connected again meanwhile
and its booking pushed anew by the new connection; now the object is read again just before its
DELETE, and one carrying another connection's mark stays."""

from __future__ import annotations

import asyncio
import http.client
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from caldav.collection import Calendar
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.worker import Worker
from tests.api.calendars.conftest import SETTINGS, connect, drain, in_calendar, pushed_one
from tests.api.conftest import Api
from tests.radicale import Radicale

BOUND = 15.0
_ETAG_IN_XML = re.compile(rb'(<(?:[A-Za-z0-9_]+:)?getetag>)\s*(?:&quot;|")')
_DROPPED = {"connection", "keep-alive", "transfer-encoding", "content-length", "etag"}


@dataclass
class WeakProxy:
    url: str
    upstream: str
    listed: threading.Event = field(default_factory=threading.Event)  # a multiget was answered
    release: threading.Event = field(default_factory=threading.Event)
    hold_listing: bool = False  # hold the next calendar-multiget's answer until `release`
    etags: list[str] = field(default_factory=list)  # the ETag headers it passed on

    def calendar_url(self, calendar: Calendar) -> str:
        return str(calendar.url).replace(self.upstream, self.url)


@contextmanager
def weak_proxy(radicale: Radicale) -> Iterator[WeakProxy]:
    up = urlsplit(radicale.url)
    proxy: WeakProxy

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):
                return self._forward
            raise AttributeError(name)

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in {"host", "accept-encoding", *_DROPPED}
            }
            conn = http.client.HTTPConnection(up.hostname or "", up.port, timeout=BOUND)
            try:
                conn.request(self.command, self.path, body=body or None, headers=headers)
                answer = conn.getresponse()
                data = _ETAG_IN_XML.sub(rb'\1W/"', answer.read())
                passed = [(k, v) for k, v in answer.getheaders() if k.lower() not in _DROPPED]
                etag = answer.getheader("etag")
            finally:
                conn.close()
            if etag:
                weak = etag if etag.startswith("W/") else f"W/{etag}"
                proxy.etags.append(weak)
                passed.append(("ETag", weak))
            if self.command == "REPORT" and b"calendar-multiget" in body and proxy.hold_listing:
                proxy.hold_listing = False
                proxy.listed.set()
                proxy.release.wait(BOUND)
            self.send_response(answer.status)
            for k, v in passed:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    proxy = WeakProxy(
        url=f"http://127.0.0.1:{server.server_address[1]}/", upstream=radicale.url.rstrip("/") + "/"
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.release.set()
        server.shutdown()
        server.server_close()


def _listed_etags(proxy: WeakProxy, calendar: Calendar) -> list[str | None]:
    from caldav.davclient import DAVClient

    from tests.radicale import PASSWORD, USER

    client = DAVClient(
        url=proxy.calendar_url(calendar), username=USER, password=PASSWORD, enable_rfc6764=False
    )
    with client:
        cal = Calendar(client=client, url=proxy.calendar_url(calendar))
        return [o.etag for o in cal.get_objects_by_sync_token(load_objects=False)]


async def test_a_removal_in_flight_leaves_the_new_pushes_where_etags_are_weak(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    calendar = radicale.new_calendar()
    with weak_proxy(radicale) as proxy:
        url = proxy.calendar_url(calendar)
        resource, booking = await pushed_one(cal_api, worker, calendar, url=url)
        etags = await asyncio.to_thread(_listed_etags, proxy, calendar)
        assert len(etags) == 1
        assert str(etags[0]).startswith('W/"'), etags  # weak, as GMX sends them

        path = f"/v1/resources/{resource['resource_id']}/calendar"
        other = Worker(engine, SETTINGS, clock=cal_api.clock, jitter=lambda: 0.0, worker_id="w2")
        proxy.hold_listing = True
        assert (await cal_api.delete(f"{path}?remove_pushed=true")).status_code == 204
        removing = asyncio.create_task(drain(other))
        try:
            assert await asyncio.to_thread(proxy.listed.wait, BOUND)  # it has listed
            # the same calendar connected again: its booking pushed anew, by the new connection
            again = await connect(cal_api, calendar, resource, url=url, pull=False)
            assert again.status_code == 201
            await drain(worker)
        finally:
            proxy.release.set()
        await asyncio.wait_for(removing, BOUND)
        assert set(in_calendar(calendar)) == {booking["booking_id"]}  # the new push stays
        assert (await cal_api.get(path)).status_code == 200


async def test_a_removal_still_deletes_its_own_events_where_etags_are_weak(
    cal_api: Api, radicale: Radicale, worker: Worker
) -> None:
    calendar = radicale.new_calendar()
    with weak_proxy(radicale) as proxy:
        url = proxy.calendar_url(calendar)
        resource, _ = await pushed_one(cal_api, worker, calendar, url=url)
        path = f"/v1/resources/{resource['resource_id']}/calendar"
        assert (await cal_api.delete(f"{path}?remove_pushed=true")).status_code == 204
        await drain(worker)
        assert in_calendar(calendar) == {}
