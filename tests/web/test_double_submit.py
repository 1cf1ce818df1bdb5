"""One form, one booking: a booking page's form sent twice (a double click, a reload of the
POST) books once, and both answers show that booking.

Before, a pool page (`mode: any`) booked a second resource for the second send: the same
customer twice at the same time, two confirmation emails, two rooms held.
"""

from __future__ import annotations

import asyncio

import httpx

from tests.web.conftest import Api
from tests.web.pages import Doc, make_page


async def _form(http: httpx.AsyncClient) -> dict[str, str]:
    page = Doc((await http.get("/book/dr-berg")).text)
    form = Doc((await http.get(page.all("time")[0]["href"])).text).form("booking-form")
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
