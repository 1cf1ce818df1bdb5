"""One form, one booking: a booking page's form sent twice (a double click, a reload of the
POST) books once, and both answers show that booking.

Before, a pool page (`mode: any`) booked a second resource for the second send: the same
customer twice at the same time, two confirmation emails, two rooms held. And a form sent again
with other details (back, edit, send) was shown the first booking as if the edits were in it;
now it is told they were not (422, with that booking's link).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.web.conftest import Api
from tests.web.pages import Doc, make_page


async def _form(http: httpx.AsyncClient, index: int = 0) -> dict[str, str]:
    """The form of the page's `index`-th free time (the first starts now, the 5th in an hour)."""
    page = Doc((await http.get("/book/dr-berg")).text)
    form = Doc((await http.get(page.all("time")[index]["href"])).text).form("booking-form")
    return {**form["fields"], "name": "Ann", "email": "ann@example.com"}


async def _bookings(api: Api) -> list[dict[str, object]]:
    return list((await api.get("/v1/bookings")).json()["data"])


def _manage(r: httpx.Response) -> str:
    assert r.status_code == 201, r.text
    return Doc(r.text).one("manage-link")["href"]


async def test_a_form_sent_twice_at_once_books_once(api: Api) -> None:
    await make_page(api, resources=2)
    fields = await _form(api.http)
    first, second = await asyncio.gather(
        api.http.post("/book/dr-berg", data=fields), api.http.post("/book/dr-berg", data=fields)
    )
    assert _manage(first) == _manage(second)
    # A reload of the confirmation sends the form a third time: the same booking again.
    third = await api.http.post("/book/dr-berg", data=fields)
    assert _manage(third) == _manage(first)
    assert len(await _bookings(api)) == 1
    # The link opens that booking.
    assert (await api.http.get(_manage(first))).status_code == 200


async def test_a_form_corrected_after_an_error_books_once(api: Api) -> None:
    await make_page(api, resources=2)
    fields = await _form(api.http)
    bad = await api.http.post("/book/dr-berg", data={**fields, "email": "not an email"})
    assert bad.status_code == 422
    again = Doc(bad.text).form("booking-form")["fields"]
    assert again["submission"] == fields["submission"]  # the form is the same submission
    ok = await api.http.post("/book/dr-berg", data={**again, "email": "ann@example.com"})
    assert ok.status_code == 201, ok.text
    assert len(await _bookings(api)) == 1


async def test_two_forms_of_one_visitor_are_two_bookings(api: Api) -> None:
    await make_page(api, resources=2)
    one, two = await _form(api.http), await _form(api.http)
    assert one["submission"] != two["submission"]
    assert _manage(await api.http.post("/book/dr-berg", data=one)) != _manage(
        await api.http.post("/book/dr-berg", data=two)
    )
    assert len(await _bookings(api)) == 2
    # A form from before this field existed still books (once per send, as before).
    old = {k: v for k, v in one.items() if k != "submission"}
    assert (await api.http.post("/book/dr-berg", data=old)).status_code == 409  # both rooms taken


async def test_a_form_sent_again_with_other_details_is_told_and_changes_nothing(api: Api) -> None:
    await make_page(api, resources=2, fields={"notes": "optional"})
    fields = await _form(api.http)
    first = _manage(await api.http.post("/book/dr-berg", data=fields))
    later = Doc((await api.http.get("/book/dr-berg")).text).all("time")[3]["data-start"]
    for edit in (
        {"name": "Ann Berg"},
        {"email": "ann.berg@example.com"},
        {"notes": "Second thoughts"},
        {"start": later},
    ):
        r = await api.http.post("/book/dr-berg", data={**fields, **edit})
        assert r.status_code == 422, (edit, r.text)
        doc = Doc(r.text)
        assert doc.text("sent-before").startswith("This form was already sent"), edit
        assert doc.one("manage-link")["href"] == first  # the booking the first send made
        assert doc.one("book-again")["href"] == "/book/dr-berg"
    (booking,) = await _bookings(api)
    assert booking["start_time"] == "2024-05-01T09:00:00Z"  # the first free time, 11:00 in Oslo
    client = (await api.get(f"/v1/clients/{booking['client_id']}")).json()
    assert (client["name"], client["email"]) == ("Ann", "ann@example.com")
    # The same details once more: the confirmation of that booking, as before.
    assert _manage(await api.http.post("/book/dr-berg", data=fields)) == first


async def test_a_form_sent_again_after_a_cancel_shows_the_booking_as_it_is_now(api: Api) -> None:
    await make_page(api, resources=2)
    fields = await _form(api.http, 4)  # in an hour: the customer may still cancel
    confirmation = await api.http.post("/book/dr-berg", data=fields)
    assert Doc(confirmation.text).one("booking-status")["data-status"] == "confirmed"
    manage = Doc((await api.http.get(_manage(confirmation))).text).form("cancel-form")
    cancelled = await api.http.post(manage["attrs"]["action"], data=manage["fields"])
    assert cancelled.status_code == 303, cancelled.text
    # Sent again with other details: "already sent", and the booking is cancelled, as it is.
    other = await api.http.post("/book/dr-berg", data={**fields, "name": "Ann Berg"})
    assert other.status_code == 422, other.text
    doc = Doc(other.text)
    assert doc.one("booking-status")["data-status"] == "cancelled_by_customer"
    assert doc.text("booking-status") == "Cancelled by you"
    assert doc.one("manage-link")["href"] == _manage(confirmation)
    # Sent again as it was (a reload of the confirmation): the same, cancelled booking.
    again = await api.http.post("/book/dr-berg", data=fields)
    assert _manage(again) == _manage(confirmation)
    assert Doc(again.text).one("booking-status")["data-status"] == "cancelled_by_customer"
    assert len(await _bookings(api)) == 1


async def test_a_form_answered_before_the_details_were_compared_still_shows_its_booking(
    api: Api, engine: AsyncEngine
) -> None:
    # An answer stored by the version before (its fingerprint of no details: sha256 of "POST",
    # the page and an empty query and body) cannot say what was sent: taken as the same.
    page = await make_page(api, resources=2)
    fields = await _form(api.http)
    first = _manage(await api.http.post("/book/dr-berg", data=fields))
    before = hashlib.sha256(f"POST\npage {page['page_id']}\n\n".encode()).hexdigest()
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE idempotency_keys SET fingerprint = :f"), {"f": before})
    again = await api.http.post("/book/dr-berg", data={**fields, "name": "Ann Berg"})
    assert _manage(again) == first
    assert len(await _bookings(api)) == 1


# -- a second send while the first is still running (PostgreSQL: SQLite runs them in turn) -------


def _form_lock(app_id: str, page_id: str, submission: str) -> tuple[int, int]:
    """The advisory lock a keyed create takes on its key (services/idempotency.py: blake2b of
    the app's id and the key, two signed 32-bit halves; the key of a form is "page ID SUB")."""
    key = f"page {page_id} {submission}".encode()
    digest = hashlib.blake2b(uuid.UUID(app_id).bytes + key, digest_size=8).digest()
    return (
        int.from_bytes(digest[:4], "big", signed=True),
        int.from_bytes(digest[4:], "big", signed=True),
    )


@asynccontextmanager
async def _first_send_running(
    api: Api, engine: AsyncEngine
) -> AsyncIterator[tuple[dict[str, str], asyncio.Task[httpx.Response]]]:
    """A first send of the form whose transaction still runs (its key's lock held here, nothing
    stored), and a second send of it, started once the lock is held."""
    if api.backend != "postgresql":
        pytest.skip("SQLite: a second send waits for the first's write lock at BEGIN IMMEDIATE")
    page = await make_page(api, resources=2)
    app_id = (await api.get("/v1/app")).json()["app_id"]
    fields = await _form(api.http)
    k1, k2 = _form_lock(app_id, page["page_id"], fields["submission"])
    async with engine.connect() as conn, conn.begin():
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k1, :k2)"), {"k1": k1, "k2": k2})
        yield fields, asyncio.create_task(api.http.post("/book/dr-berg", data=fields))


async def _waiters(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(
            # this database's only: pg_locks is the whole server's, where other tests' workers
            # wait on advisory locks of their own (the fan-out's, services/fanout.py)
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
    return int(found or 0)


async def test_a_second_send_waits_on_the_first_sends_lock(api: Api, engine: AsyncEngine) -> None:
    async with _first_send_running(api, engine) as (_fields, second):
        # The second send queues on the first's lock (before, it polled with a try-lock, which
        # never waits: no waiter ever showed). Checked until seen, for at most 10 s.
        for _ in range(200):
            if await _waiters(engine) == 1:
                break
            await asyncio.wait([second], timeout=0.05)
        assert await _waiters(engine) == 1
        assert not second.done()
    # The first send rolled back and stored nothing: the second books.
    assert _manage(await second)
    assert len(await _bookings(api)) == 1


async def test_a_first_send_that_runs_on_is_waited_for_two_seconds(
    api: Api, engine: AsyncEngine
) -> None:
    async with _first_send_running(api, engine) as (_fields, second):
        r = await second  # the first holds its lock longer than the wait: 409, nothing booked
        assert r.status_code == 409, r.text
        assert Doc(r.text).text("error-detail") == (  # the visitor's words, not the API's
            "This form is still being sent. Wait a moment, then reload this page to see your "
            "booking."
        )
    assert await _bookings(api) == []


async def test_a_form_sent_again_shows_the_booking_after_its_due_timer_as_the_api_does(
    api: Api,
) -> None:
    # An unpaid payment hold (instant_payment) times out by itself 5 minutes after it was made.
    # Before, the replay of its form still showed it "Waiting" while GET /v1/bookings/{id} said
    # it had not been paid in time.
    await make_page(api, resources=1, graph="instant_payment")
    fields = await _form(api.http, 4)  # in an hour
    first = await api.http.post("/book/dr-berg", data=fields)
    assert Doc(first.text).one("booking-status")["data-status"] == "tentative"
    api.clock.advance(timedelta(minutes=10))  # past the payment's deadline, unpaid
    again = await api.http.post("/book/dr-berg", data=fields)
    assert _manage(again) == _manage(first)
    shown = Doc(again.text)
    assert shown.one("booking-status")["data-status"] == "unpaid"
    assert shown.text("booking-status") == "Not paid in time"
    (booking,) = await _bookings(api)
    assert booking["status"] == "unpaid"
    # Sent again with other details: "already sent", with the booking as it is now, too.
    other = await api.http.post("/book/dr-berg", data={**fields, "name": "Ann Berg"})
    assert other.status_code == 422, other.text
    assert Doc(other.text).one("booking-status")["data-status"] == "unpaid"


async def test_a_form_sent_again_after_the_start_shows_its_booking(api: Api) -> None:
    # The first free time starts now; a reload of the confirmation an hour later, after that
    # start, is still the same form: its booking, not "the start time has passed".
    await make_page(api, resources=2)
    fields = await _form(api.http)
    first = await api.http.post("/book/dr-berg", data=fields)
    api.clock.advance(timedelta(hours=1))
    again = await api.http.post("/book/dr-berg", data=fields)
    assert _manage(again) == _manage(first)
    assert len(await _bookings(api)) == 1
    # Another form for the same time, after its start: refused, as before.
    other = await _form(api.http)
    late = await api.http.post("/book/dr-berg", data={**other, "start": fields["start"]})
    assert late.status_code == 409, late.text
    assert len(await _bookings(api)) == 1
