"""The no-JavaScript journey through forms, as a browser without scripts would make it."""

from __future__ import annotations

import httpx

from tests.web.conftest import Api
from tests.web.pages import Doc, make_page


async def _open(http: httpx.AsyncClient, url: str, status: int = 200) -> Doc:
    r = await http.get(url)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("text/html")
    return Doc(r.text)


async def _submit(
    http: httpx.AsyncClient, doc: Doc, hook: str, status: int, **answers: str
) -> httpx.Response:
    form = doc.form(hook)
    data = {**form["fields"], **answers}
    r = await http.post(form["attrs"]["action"], data=data)
    assert r.status_code == status, r.text
    return r


async def test_book_a_time_without_javascript(api: Api) -> None:
    await make_page(api)
    page = await _open(api.http, "/book/dr-berg")
    assert page.text("page-title") == "Book Dr. Berg"
    times = page.all("time")
    assert times, "free times are links"
    # The clock is Wednesday 2024-05-01 09:00 UTC = 11:00 in Oslo; the first free time is then.
    assert times[0]["data-start"] == "2024-05-01T09:00:00+00:00"
    assert times[0]["_text"] == "11:00\u202fAM"  # CLDR: a narrow no-break space
    form_page = await _open(api.http, times[0]["href"])
    assert "Wednesday, May 1, 2024" in form_page.text("chosen-time")
    done = await _submit(
        api.http, form_page, "booking-form", 201, name="Ann Lee", email="ann@example.com"
    )
    confirmation = Doc(done.text)
    assert confirmation.one("confirmation")
    assert confirmation.one("booking-status")["data-status"] == "confirmed"
    listed = (await api.get("/v1/bookings")).json()["data"]
    assert len(listed) == 1
    assert listed[0]["start_time"] == "2024-05-01T09:00:00Z"
    assert listed[0]["end_time"] == "2024-05-01T09:30:00Z"
    again = await _open(api.http, "/book/dr-berg")
    assert again.all("time")[0]["data-start"] == "2024-05-01T09:30:00+00:00"


async def test_week_navigation_and_zone_by_links(api: Api) -> None:
    await make_page(api)
    page = await _open(api.http, "/book/dr-berg?tz=America/New_York&duration=PT60M")
    assert not page.all("week-prev"), "no way back into a week that has passed"
    assert page.one("tz-select")
    assert "Europe/Oslo" in page.text("resource-zone")
    # 09:00 UTC is 05:00 in New York
    assert page.all("time")[0]["_text"] == "5:00\u202fAM"
    nxt = await _open(api.http, page.one("week-next")["href"])
    assert nxt.all("day")[0]["data-date"] == "2024-05-06"
    assert nxt.one("week-prev")
    fragment = await api.http.get(page.one("week-next")["href"] + "&fragment=week")
    assert fragment.text.lstrip().startswith("<section")


async def test_bad_answers_bring_the_form_back_with_messages(api: Api) -> None:
    await make_page(api, fields={"phone": "required"})
    page = await _open(api.http, "/book/dr-berg")
    form_page = await _open(api.http, page.all("time")[0]["href"])
    r = await _submit(api.http, form_page, "booking-form", 422, name="", email="not-an-email")
    doc = Doc(r.text)
    assert doc.one("form-errors")
    assert doc.text("error-name") == "Please fill in this field."
    assert "valid email" in doc.text("error-email")
    assert doc.one("error-phone")
    assert doc.form("booking-form")["fields"]["email"] == "not-an-email"
    assert (await api.get("/v1/bookings")).json()["data"] == []


async def test_unknown_page_and_garbage_are_pages_not_500(api: Api) -> None:
    await make_page(api)
    r = await api.http.get("/book/nope")
    assert r.status_code == 404
    assert "text/html" in r.headers["content-type"]
    for query in ("?tz=Mars/Base&week=2024-99-99&duration=PT7H", "?week=9999-01-01"):
        assert (await api.http.get("/book/dr-berg" + query)).status_code == 200
    for query in ("?start=garbage", "?start=2024-05-01T09:07:00Z", ""):
        r = await api.http.get("/book/dr-berg/time" + query)
        assert r.status_code in (404, 409), (query, r.status_code)
        assert "text/html" in r.headers["content-type"]


async def test_a_german_page_is_german(api: Api) -> None:
    await make_page(api, locale="de")
    page = await _open(api.http, "/book/dr-berg")
    assert '<html lang="de">' in (await api.http.get("/book/dr-berg")).text
    assert page.text("week-title") == "Woche ab Montag, 29. April 2024"
    assert page.all("time")[0]["_text"] == "11:00"
    assert page.text("week-next") == "Nächste Woche"
    form_page = await _open(api.http, page.all("time")[0]["href"])
    assert form_page.text("chosen-time").startswith("Mittwoch, 1. Mai 2024, 11:00")
    assert "30 Minuten" in form_page.text("chosen-time")
    r = await _submit(api.http, form_page, "booking-form", 422, name="", email="x@example.com")
    assert Doc(r.text).text("error-name") == "Bitte füllen Sie dieses Feld aus."


async def test_on_a_weekend_the_page_opens_on_the_next_free_week(api: Api) -> None:
    await make_page(api)
    api.clock.now = api.clock.now.replace(day=4, hour=12)  # Saturday: this week is over
    page = await _open(api.http, "/book/dr-berg")
    assert page.all("day")[0]["data-date"] == "2024-05-06"
    assert page.all("time")[0]["data-start"] == "2024-05-06T07:00:00+00:00"
    asked = await _open(api.http, "/book/dr-berg?week=2024-05-04")
    assert asked.all("day")[0]["data-date"] == "2024-04-29"
    assert not asked.all("time")
    assert len(asked.all("no-times")) == 7


async def test_long_answers_and_an_emptied_page_are_answered_not_500(api: Api) -> None:
    custom = [{"key": f"k{i}", "label": f"Field {i}"} for i in range(5)]
    page = await make_page(api, fields={"notes": "optional", "custom": custom})
    form_page = await _open(
        api.http, (await _open(api.http, "/book/dr-berg")).all("time")[0]["href"]
    )
    long = {f"f_k{i}": "𝄞" * 500 for i in range(5)}
    ok = await _submit(
        api.http,
        form_page,
        "booking-form",
        201,
        name="Ann",
        email="a@example.com",
        notes="n" * 2000,
        **long,
    )
    assert ok.status_code == 201
    too_long = await _submit(
        api.http, form_page, "booking-form", 422, name="Ann", email="a@example.com", f_k0="x" * 501
    )
    assert Doc(too_long.text).one("error-f_k0")
    for booking in (await api.get("/v1/bookings")).json()["data"]:
        await api.delete(f"/v1/bookings/{booking['booking_id']}")
    archived = await api.delete(f"/v1/resources/{page['resource_ids'][0]}")
    assert archived.status_code == 200, archived.text
    fields = {**form_page.form("booking-form")["fields"], "name": "Bo", "email": "b@example.com"}
    gone = await api.http.post("/book/dr-berg", data=fields)
    assert gone.status_code == 404, gone.text
    assert Doc(gone.text).one("error")
