"""A client that leaves in the middle of its body gets no route run.

The guard reads every body before a route runs (api/guard.py). When the client disconnected
before the body was complete, it handed the route the part that had come: a booking form cut
short is still a form (`name=Ann&...&notes=Call me be`), and the booking was made with what was
cut. Now nothing runs and nothing is answered (there is nobody to answer).
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Message

from tests.api.conftest import Api
from tests.web.pages import Doc, make_page


async def test_a_form_cut_short_by_a_disconnect_books_nothing(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    await make_page(api)
    async with httpx.AsyncClient(transport=api.http._transport, base_url="http://test") as b:
        page = await b.get("/book/dr-berg")
        form = Doc((await b.get(Doc(page.text).all("time")[0]["href"])).text).form("booking-form")
        cookie = b.cookies["sg_csrf"]
    fields = {**form["fields"], "name": "Ann", "email": "ann@example.com"}
    body = urlencode({**fields, "notes": "Call me before you come"}).encode()
    sent_part = body[: body.index(b"before")]  # a whole form already: notes "Call me "
    incoming: list[Message] = [
        {"type": "http.request", "body": sent_part, "more_body": True},
        {"type": "http.disconnect"},
    ]
    answered: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        answered.append(message)

    headers = [
        (b"host", b"test"),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", str(len(body)).encode()),
        (b"cookie", f"sg_csrf={cookie}".encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/book/dr-berg",
        "raw_path": b"/book/dr-berg",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("203.0.113.9", 50000),
        "server": ("test", 80),
    }
    caplog.set_level(logging.INFO)
    before = await _book_posts(api)
    await api.http._transport.app(scope, receive, send)  # type: ignore[attr-defined]
    assert (await api.get("/v1/bookings")).json()["data"] == []
    assert not [m for m in answered if m["type"] == "http.response.start" and m["status"] < 400]
    # Counted as the client's leaving (499, as nginx logs it), not as a server error: before,
    # the access line and the request metric said 500, which the 5xx alert of
    # docs/operations.md counts, for every visitor whose phone lost its signal mid-form.
    lines = [r.getMessage() for r in caplog.records if r.name == "slotgraph.access"]
    (line,) = [m for m in lines if m.startswith("POST /book/dr-berg ")]
    assert line.startswith("POST /book/dr-berg 499 "), line
    # The metrics are the process's: other tests in this worker count too, so compare counts.
    after = await _book_posts(api)
    assert after.get("499", 0) - before.get("499", 0) == 1
    assert after.get("500", 0) == before.get("500", 0)


async def _book_posts(api: Api) -> dict[str, float]:
    """The request counter of POSTs, by status (the route is `unmatched`: none ran)."""
    scraped = (await api.http.get("/metrics")).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(scraped):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "slotgraph_http_request_duration_seconds_count"
                and labels.get("method") == "POST"
            ):
                counts[labels["status"]] = counts.get(labels["status"], 0) + sample.value
    return counts
