"""The manage link: see the booking, reschedule it, cancel it; notice rules; the same token on
the API."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import httpx
import icalendar
import pytest

from tests.web.conftest import Api
from tests.web.pages import Doc, make_page


async def _book(http: httpx.AsyncClient, index: int = 4) -> Doc:
    """Book the page's `index`-th free time (the 5th: an hour from now)."""
    page = Doc((await http.get("/book/dr-berg")).text)
    form = Doc((await http.get(page.all("time")[index]["href"])).text).form("booking-form")
    data = {**form["fields"], "name": "Ann", "email": "ann@example.com"}
    r = await http.post("/book/dr-berg", data=data)
    assert r.status_code == 201, r.text
    return Doc(r.text)


async def _open(http: httpx.AsyncClient, url: str, status: int = 200) -> Doc:
    r = await http.get(url)
    assert r.status_code == status, r.text
    return Doc(r.text)


async def _post(http: httpx.AsyncClient, doc: Doc, hook: str, status: int = 303) -> Any:
    form = doc.form(hook)
    r = await http.post(form["attrs"]["action"], data=form["fields"])
    assert r.status_code == status, r.text
    return r


async def test_book_then_manage_reschedule_and_cancel(api: Api) -> None:
    await make_page(api)
    confirmation = await _book(api.http)
    manage_url = confirmation.one("manage-link")["href"]
    assert manage_url.startswith("/manage/ct_")
    manage = await _open(api.http, manage_url)
    assert manage.one("booking-status")["data-status"] == "confirmed"
    assert manage.one("reschedule-link")
    assert manage.one("cancel-form")
    # reschedule: a week of times, pick the next day's first, confirm
    week = await _open(api.http, manage.one("reschedule-link")["href"])
    thursday = [t for t in week.all("time") if t["data-start"].startswith("2024-05-02")]
    choice = await _open(api.http, thursday[0]["href"])
    moved = await _post(api.http, choice, "reschedule-form")
    after = await _open(api.http, moved.headers["location"])
    assert after.one("done")
    booking = (await api.get("/v1/bookings")).json()["data"][0]
    assert booking["start_time"] == "2024-05-02T07:00:00Z"  # 09:00 in Oslo
    assert booking["status"] == "confirmed"
    # cancel
    cancelled = await _post(api.http, after, "cancel-form")
    final = await _open(api.http, cancelled.headers["location"])
    assert final.one("booking-status")["data-status"] == "cancelled_by_customer"
    assert not final.all("cancel-form")
    assert not final.all("reschedule-link")
    assert final.one("nothing-to-change")


async def test_a_taken_new_time_keeps_the_old_one(api: Api) -> None:
    await make_page(api)
    mine = await _book(api.http)
    manage_url = mine.one("manage-link")["href"]
    week = await _open(api.http, f"{manage_url}/reschedule")
    choice = await _open(api.http, week.all("time")[0]["href"])  # free now...
    start = choice.form("reschedule-form")["fields"]["start"]
    async with httpx.AsyncClient(transport=api.http._transport, base_url="http://test") as other:
        page = Doc((await other.get("/book/dr-berg")).text)
        link = next(t["href"] for t in page.all("time") if t["data-start"] == start)
        form = Doc((await other.get(link)).text).form("booking-form")
        data = {**form["fields"], "name": "Bo", "email": "bo@example.com"}
        assert (await other.post("/book/dr-berg", data=data)).status_code == 201  # ...taken
    lost = await _post(api.http, choice, "reschedule-form", status=409)
    assert Doc(lost.text).one("taken")
    assert all("/manage/" in t["href"] for t in Doc(lost.text).all("time"))
    taken_at = start.replace("+00:00", "Z")
    mine_now = [
        b for b in (await api.get("/v1/bookings")).json()["data"] if b["start_time"] != taken_at
    ]
    assert len(mine_now) == 1
    assert mine_now[0]["start_time"] == "2024-05-01T10:00:00Z"  # the old time, still held
    assert mine_now[0]["status"] == "confirmed"


async def test_past_the_notice_the_page_says_so_and_offers_nothing(api: Api) -> None:
    await make_page(api, min_cancel_notice="PT24H", min_reschedule_notice="PT48H")
    # a week later: Wednesday 8 May, 09:00 in Oslo
    page = Doc((await api.http.get("/book/dr-berg")).text)
    later = Doc((await api.http.get(page.one("week-next")["href"])).text)
    wednesday = next(t for t in later.all("time") if t["data-start"].startswith("2024-05-08"))
    form = Doc((await api.http.get(wednesday["href"])).text).form("booking-form")
    done = await api.http.post(
        "/book/dr-berg", data={**form["fields"], "name": "Ann", "email": "ann@example.com"}
    )
    manage_url = Doc(done.text).one("manage-link")["href"]
    token = manage_url.removeprefix("/manage/")
    start = "2024-05-08T07:00:00Z"  # 09:00 in Oslo
    assert (await _open(api.http, manage_url)).all("cancel-form")

    api.clock.now = api.clock.now.replace(day=6, hour=10)  # 45 h before: no reschedule
    doc = await _open(api.http, manage_url)
    assert doc.all("cancel-form")
    bid = (await api.get("/v1/bookings")).json()["data"][0]["booking_id"]
    shown = (await api.as_key(token).get(f"/v1/bookings/{bid}")).json()
    assert shown["available_actions"] == ["cancel_by_customer"]
    assert not doc.all("reschedule-link")
    assert "Rescheduling online was possible until" in doc.text("too-late")
    assert (await api.http.get(f"{manage_url}/reschedule")).status_code == 409

    api.clock.advance(timedelta(hours=23, minutes=30))  # 21.5 h before: nothing at all
    doc = await _open(api.http, manage_url)
    assert not doc.all("cancel-form")
    assert not doc.all("reschedule-link")
    assert "Cancelling online was possible until" in doc.text("too-late")
    # The same rule on the API with the token, and on a forged POST of the old form: the
    # token's answer no longer offers the cancel it would be refused (it did, until 2026-12-01).
    assert (await api.as_key(token).get(f"/v1/bookings/{bid}")).json()["available_actions"] == []
    r = await api.as_key(token).put(f"/v1/bookings/{bid}/cancel_by_customer")
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "notice_passed"
    forged = await api.http.post(
        f"{manage_url}/cancel", data={"csrf_token": api.http.cookies["sg_csrf"]}
    )
    assert forged.status_code == 409
    assert Doc(forged.text).one("refused")
    assert (await api.get("/v1/bookings")).json()["data"][0]["start_time"] == start
    assert (await api.get("/v1/bookings")).json()["data"][0]["status"] == "confirmed"


async def test_a_bad_token_is_a_404_page(api: Api) -> None:
    r = await api.http.get("/manage/ct_nope")
    assert r.status_code == 404
    assert "text/html" in r.headers["content-type"]
    assert (await api.http.get("/manage/x" * 300)).status_code == 404


async def test_an_api_booking_has_a_manage_page_too(api: Api) -> None:
    resource = await api.resource(name="Room 9")
    booking = await api.book(
        resource_id=resource["resource_id"],
        start_time="2024-05-03T10:00:00Z",
        end_time="2024-05-03T11:00:00Z",
        customer={"name": "Cy", "email": "cy@example.com"},
    )
    doc = await _open(api.http, f"/manage/{booking['customer_token']}")
    assert doc.text("booking-what") == "Room 9"
    assert doc.all("cancel-form")
    week = await _open(api.http, doc.one("reschedule-link")["href"])
    assert week.all("time")


async def test_the_token_is_never_in_the_access_log(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    await make_page(api)
    manage_url = (await _book(api.http)).one("manage-link")["href"]
    token = manage_url.removeprefix("/manage/")
    with caplog.at_level(logging.INFO, logger="slotgraph.access"):
        await _open(api.http, manage_url)
        await _open(api.http, f"{manage_url}/reschedule")
    assert "/manage/ct_[redacted]/reschedule" in caplog.text
    assert token not in caplog.text


async def test_the_calendar_file_follows_the_booking(api: Api) -> None:
    await make_page(api)
    confirmation = await _book(api.http)
    ics_url = confirmation.one("ics-link")["href"]
    first = await api.http.get(ics_url)
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/calendar")
    cal = icalendar.Calendar.from_ical(first.content)
    (event,) = cal.walk("VEVENT")
    booking = (await api.get("/v1/bookings")).json()["data"][0]
    assert str(event["uid"]).startswith(booking["booking_id"])
    assert event["dtstart"].dt.isoformat() == "2024-05-01T10:00:00+00:00"
    assert str(event["summary"]) == "Book Dr. Berg"
    assert str(cal["method"]) == "PUBLISH"
    manage = await _open(api.http, confirmation.one("manage-link")["href"])
    await _post(api.http, manage, "cancel-form")
    after = icalendar.Calendar.from_ical((await api.http.get(ics_url)).content)
    assert str(after["method"]) == "CANCEL"
    (cancelled,) = after.walk("VEVENT")
    assert cancelled["uid"] == event["uid"]
    assert int(cancelled["sequence"]) > int(event.get("sequence", 0))


async def test_a_new_time_ending_past_the_dates_is_refused_not_a_500(api: Api) -> None:
    await make_page(api)
    manage_url = (await _book(api.http)).one("manage-link")["href"]
    late = "2199-12-31T23:45:00Z"  # the start is in range; its end is not
    await _open(api.http, f"{manage_url}/reschedule/time?start={late}", status=404)
    manage = await _open(api.http, manage_url)
    form = manage.form("cancel-form")["fields"]  # any of the page's forms: its CSRF token
    r = await api.http.post(
        f"{manage_url}/reschedule", data={"csrf_token": form["csrf_token"], "start": late}
    )
    assert r.status_code == 404, r.text
    assert (await _open(api.http, manage_url)).one("booking-status")["data-status"] == "confirmed"


async def test_a_booking_moves_into_time_only_it_holds(api: Api) -> None:
    """Its own time is not taken from the booking being moved: a 60-minute booking at 10:00
    moves to 10:30; a time overlapping another booking is still refused."""
    await make_page(api)
    room = (await api.get("/v1/resources")).json()["data"][0]["resource_id"]
    customer = {"name": "Cy", "email": "cy@example.com"}
    mine = await api.book(  # Thursday 2 May, 10:00 to 11:00 in Oslo
        resource_id=room,
        start_time="2024-05-02T08:00:00Z",
        end_time="2024-05-02T09:00:00Z",
        customer=customer,
    )
    await api.book(  # someone else's, 11:30 to 12:00
        resource_id=room,
        start_time="2024-05-02T09:30:00Z",
        end_time="2024-05-02T10:00:00Z",
        customer={"name": "Bo", "email": "bo@example.com"},
    )
    manage_url = f"/manage/{mine['customer_token']}"
    week = await _open(api.http, f"{manage_url}/reschedule?week=2024-05-02")
    starts = {t["data-start"]: t["href"] for t in week.all("time")}
    thursday = sorted(s for s in starts if s.startswith("2024-05-02"))
    assert "2024-05-02T08:30:00+00:00" in thursday, thursday  # overlaps only itself
    assert "2024-05-02T07:30:00+00:00" in thursday  # 09:30 to 10:30, the same
    assert "2024-05-02T09:00:00+00:00" not in thursday  # would overlap Bo's at 11:30
    choice = await _open(api.http, starts["2024-05-02T08:30:00+00:00"])
    moved = await _post(api.http, choice, "reschedule-form")
    assert (await _open(api.http, moved.headers["location"])).one("done")
    after = (await api.get(f"/v1/bookings/{mine['booking_id']}")).json()
    assert (after["start_time"], after["end_time"]) == (
        "2024-05-02T08:30:00Z",
        "2024-05-02T09:30:00Z",
    )
    # Into Bo's time (a forged form: the page never offers it): refused, the booking stays.
    forged = choice.form("reschedule-form")["fields"]
    r = await api.http.post(
        f"{manage_url}/reschedule", data={**forged, "start": "2024-05-02T09:00:00Z"}
    )
    assert r.status_code == 409, r.text
    assert Doc(r.text).one("taken")
    still = (await api.get(f"/v1/bookings/{mine['booking_id']}")).json()
    assert still["start_time"] == "2024-05-02T08:30:00Z"


async def test_the_customer_changes_the_language_on_the_manage_page(api: Api) -> None:
    await make_page(api)  # an English page
    manage_url = (await _book(api.http)).one("manage-link")["href"]
    manage = await _open(api.http, manage_url)
    assert manage.one("manage")["_text"] == "Your booking"
    form = manage.form("language-form")
    assert form["attrs"]["action"] == f"{manage_url}/language"
    assert form["fields"]["locale"] == ""  # a <select>: its options are not read as a value
    # without the form's CSRF token: refused, nothing changed
    no_token = {"locale": "de"}
    assert (await api.http.post(f"{manage_url}/language", data=no_token)).status_code == 403
    # a language the pages do not speak, or none: refused as what was sent (422, an error page;
    # it was 404, as if the booking were not found)
    for fields in ({**form["fields"], "locale": "fr"}, form["fields"]):
        refused = await api.http.post(f"{manage_url}/language", data=fields)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("text/html")
        assert Doc(refused.text).text("error-detail") == "Choose a language from the page."
    assert (await api.get("/v1/bookings")).json()["data"][0]["locale"] == "en"
    r = await api.http.post(f"{manage_url}/language", data={**form["fields"], "locale": "de"})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"{manage_url}?done=language"
    german = await api.http.get(r.headers["location"])
    assert '<html lang="de">' in german.text
    doc = Doc(german.text)
    assert doc.one("manage")["_text"] == "Ihre Buchung"
    assert doc.text("done") == "Diese Seite und Ihre E-Mails sind jetzt in der gewählten Sprache."
    assert 'value="de" lang="de" selected' in german.text
    booking = (await api.get("/v1/bookings")).json()["data"][0]
    assert booking["locale"] == "de"  # the emails speak it too
    # a cancelled booking has nothing left to say: no language form
    await _post(api.http, doc, "cancel-form")
    assert not (await _open(api.http, manage_url)).all("language-form")


async def test_a_confirmed_request_offers_no_reschedule(api: Api) -> None:
    """A `confirm_decline` page: the owner agreed to one time, so once confirmed the manage page
    offers no new time, and a reschedule sent anyway is refused (409) and moves nothing."""
    await make_page(api, graph="confirm_decline")
    confirmation = await _book(api.http)
    manage_url = confirmation.one("manage-link")["href"]
    waiting = await _open(api.http, manage_url)
    assert waiting.one("reschedule-link")  # a request: the owner decides on the new time
    week = await _open(api.http, waiting.one("reschedule-link")["href"])
    choice = await _open(api.http, week.all("time")[-1]["href"])
    booking = (await api.get("/v1/bookings")).json()["data"][0]
    assert (await api.put(f"/v1/bookings/{booking['booking_id']}/confirm", {})).status_code == 200
    confirmed = await _open(api.http, manage_url)
    assert confirmed.one("booking-status")["data-status"] == "confirmed"
    assert not confirmed.all("reschedule-link")
    assert confirmed.one("cancel-form")
    await _open(api.http, waiting.one("reschedule-link")["href"], status=409)
    await _post(api.http, choice, "reschedule-form", status=409)
    after = (await api.get(f"/v1/bookings/{booking['booking_id']}")).json()
    assert (after["status"], after["start_time"]) == ("confirmed", booking["start_time"])


async def test_a_seats_manage_page_offers_no_cancel_its_class_would_refuse(api: Api) -> None:
    """A seat's class closes the customer's cancel at start - min_cancel_time: the page stops
    offering it then, and says until when it was possible (before, the button stayed and the
    POST was refused, 409 cancel_window_closed)."""
    resource = await api.resource(name="Yoga studio")
    owner = await api.book(
        graph="group_owner",
        resource_id=resource["resource_id"],
        start_time="2024-05-10T18:00:00Z",
        end_time="2024-05-10T19:00:00Z",
        max_seats=5,
        min_cancel_time="P1D",
    )
    seat = await api.book(
        graph="group_customer",
        owner_booking_id=owner["booking_id"],
        customer={"name": "Ann", "email": "ann@example.com"},
    )
    manage_url = f"/manage/{seat['customer_token']}"
    api.clock.now = api.clock.now.replace(day=9, hour=18)  # exactly 1 day before: allowed
    assert (await _open(api.http, manage_url)).all("cancel-form")
    api.clock.advance(timedelta(seconds=1))
    doc = await _open(api.http, manage_url)
    assert not doc.all("cancel-form")
    assert "Cancelling online was possible until" in doc.text("too-late")
