"""What protects the booking page: CSRF, headers, one winner per time, the pool."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from slotgraph.appsettings import AppSettings
from tests.web.conftest import Api
from tests.web.pages import WEEKDAYS, Doc, make_page


@pytest.fixture
async def second_visitor(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """Another browser: the same server, its own cookies."""
    async with httpx.AsyncClient(transport=api.http._transport, base_url="http://test") as http:
        yield http


async def _form_for_first_time(http: httpx.AsyncClient) -> dict[str, str]:
    page = Doc((await http.get("/book/dr-berg")).text)
    form = Doc((await http.get(page.all("time")[0]["href"])).text).form("booking-form")
    return {**form["fields"], "name": "Ann", "email": "ann@example.com"}


async def test_a_post_without_the_visitors_token_is_refused(
    api: Api, second_visitor: httpx.AsyncClient
) -> None:
    await make_page(api)
    fields = await _form_for_first_time(api.http)
    # Another site's form: the victim's browser has no matching cookie-and-field pair.
    forged = await second_visitor.post("/book/dr-berg", data=fields)
    assert forged.status_code == 403
    assert Doc(forged.text).one("error")
    no_field = {k: v for k, v in fields.items() if k != "csrf_token"}
    assert (await api.http.post("/book/dr-berg", data=no_field)).status_code == 403
    assert (await api.get("/v1/bookings")).json()["data"] == []
    ok = await api.http.post("/book/dr-berg", data=fields)
    assert ok.status_code == 201


async def test_the_page_sets_its_headers_and_may_be_embedded_on_allowed_origins(
    api: Api,
) -> None:
    await api.put("/v1/app", {"allowed_origins": ["https://shop.example"]})
    await make_page(api)
    r = await api.http.get("/book/dr-berg")
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'self' https://shop.example" in csp
    assert "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in r.text
    assert "csrf" not in r.headers.get("set-cookie", "") or "HttpOnly" in r.headers["set-cookie"]


async def test_two_visitors_pick_the_same_time_one_gets_it(
    api: Api, second_visitor: httpx.AsyncClient
) -> None:
    await make_page(api)
    first = await _form_for_first_time(api.http)
    second = await _form_for_first_time(second_visitor)
    assert first["start"] == second["start"]
    won = await api.http.post("/book/dr-berg", data=first)
    lost = await second_visitor.post("/book/dr-berg", data=second)
    assert won.status_code == 201
    assert lost.status_code == 409
    taken = Doc(lost.text)
    assert taken.one("taken")
    nearest = [t["data-start"] for t in taken.all("time")]
    assert nearest[:3] == [
        "2024-05-01T09:30:00+00:00",
        "2024-05-01T09:45:00+00:00",
        "2024-05-01T10:00:00+00:00",
    ]
    assert first["start"] not in [n.replace("+00:00", "Z") for n in nearest]
    # A link to a taken time shows the same page, never a form.
    link = Doc((await api.http.get("/book/dr-berg")).text).all("time")[0]["href"]
    again = await second_visitor.get(link.replace("09%3A30", "09%3A00"))
    assert again.status_code == 409
    assert Doc(again.text).one("taken")
    assert len((await api.get("/v1/bookings")).json()["data"]) == 1


async def test_a_pool_books_each_resource_once_then_says_taken(api: Api) -> None:
    await make_page(api, resources=2)
    visitors = [api.http]
    async with (
        httpx.AsyncClient(transport=api.http._transport, base_url="http://test") as b,
        httpx.AsyncClient(transport=api.http._transport, base_url="http://test") as c,
    ):
        visitors += [b, c]
        forms = [await _form_for_first_time(v) for v in visitors]
        codes = [
            (await v.post("/book/dr-berg", data=f)).status_code
            for v, f in zip(visitors, forms, strict=True)
        ]
    assert codes == [201, 201, 409]
    held = sorted(b["resource_id"] for b in (await api.get("/v1/bookings")).json()["data"])
    assert len(set(held)) == 2


async def test_a_request_page_makes_a_tentative_booking(api: Api) -> None:
    custom = [{"key": "insurer", "label": "Insurance", "required": True}]
    fields = {"notes": "optional", "custom": custom}
    await make_page(api, graph="confirm_decline", reminder="PT24H", fields=fields)
    answers = await _form_for_first_time(api.http)
    r = await api.http.post("/book/dr-berg", data={**answers, "notes": "Knee", "f_insurer": "AOK"})
    assert r.status_code == 201, r.text
    assert Doc(r.text).one("booking-status")["data-status"] == "tentative"
    booking = (await api.get("/v1/bookings")).json()["data"][0]
    assert booking["graph"] == "confirm_decline"
    assert booking["details"] == "Knee"
    assert booking["meta"] == {"fields": {"insurer": "AOK"}}
    assert booking["reminder"] == "P1D"  # the page's, copied onto the booking


async def test_a_class_page_books_seats_until_the_class_is_full(api: Api) -> None:
    page = await make_page(api, graph="group_customer", durations=["PT60M"])
    resource_id = page["resource_ids"][0]
    owner = await api.book(
        graph="group_owner",
        resource_id=resource_id,
        start_time="2024-05-02T08:00:00Z",
        end_time="2024-05-02T09:00:00Z",
        max_seats=1,
    )
    doc = Doc((await api.http.get("/book/dr-berg")).text)
    (only,) = doc.all("time")
    assert only["data-start"] == "2024-05-02T08:00:00+00:00"
    assert f"seat={owner['booking_id']}" in only["href"]
    form = Doc((await api.http.get(only["href"])).text).form("booking-form")
    data = {**form["fields"], "name": "Ann", "email": "ann@example.com"}
    r = await api.http.post("/book/dr-berg", data=data)
    assert r.status_code == 201, r.text
    seats = [
        b for b in (await api.get("/v1/bookings")).json()["data"] if b["graph"] != "group_owner"
    ]
    assert [(b["graph"], b["owner_booking_id"]) for b in seats] == [
        ("group_customer", owner["booking_id"])
    ]
    full = Doc((await api.http.get("/book/dr-berg")).text)
    assert not full.all("time")
    again = await api.http.post("/book/dr-berg", data=data)
    assert again.status_code == 409, again.text
    assert Doc(again.text).one("taken")


async def test_a_class_page_books_only_the_classes_it_shows(api: Api) -> None:
    """The form names its class by id (`seat`). Before, a page booked a seat in any class of
    the app whose id the visitor sent: on a resource the page does not offer (a staff class,
    another page's with its own questions), at a time the page never showed."""
    page = await make_page(api, graph="group_customer", durations=["PT60M"])
    shown = await api.book(
        graph="group_owner",
        resource_id=page["resource_ids"][0],
        start_time="2024-05-02T08:00:00Z",
        end_time="2024-05-02T09:00:00Z",
        max_seats=3,
    )
    staff = await api.resource(name="Staff room", weekly_hours=WEEKDAYS)
    elsewhere = await api.book(
        graph="group_owner",
        resource_id=staff["resource_id"],
        start_time="2024-05-02T08:00:00Z",
        end_time="2024-05-02T09:00:00Z",
        max_seats=3,
        details="staff only",
    )
    later = await api.book(
        graph="group_owner",
        resource_id=page["resource_ids"][0],
        start_time="2024-05-03T08:00:00Z",
        end_time="2024-05-03T09:00:00Z",
        max_seats=3,
    )
    form = Doc(
        (
            await api.http.get(
                Doc((await api.http.get("/book/dr-berg")).text).all("time")[0]["href"]
            )
        ).text
    ).form("booking-form")
    data = {**form["fields"], "name": "Ann", "email": "ann@example.com"}
    assert data["seat"] == shown["booking_id"]
    other = await api.http.post("/book/dr-berg", data={**data, "seat": elsewhere["booking_id"]})
    assert other.status_code == 404, other.text
    assert Doc(other.text).one("error")
    moved = await api.http.post("/book/dr-berg", data={**data, "seat": later["booking_id"]})
    assert moved.status_code == 409, moved.text  # not the time chosen: the page's nearest
    assert Doc(moved.text).one("taken")
    seats = [
        b for b in (await api.get("/v1/bookings")).json()["data"] if b["graph"] != "group_owner"
    ]
    assert seats == []
    ok = await api.http.post("/book/dr-berg", data=data)
    assert ok.status_code == 201, ok.text
    seats = [
        b for b in (await api.get("/v1/bookings")).json()["data"] if b["graph"] != "group_owner"
    ]
    assert [b["owner_booking_id"] for b in seats] == [shown["booking_id"]]


async def test_a_visitor_is_rate_limited_per_address_like_the_public_key(api: Api) -> None:
    await make_page(api)
    limit = AppSettings().rate_limits.public_per_minute  # the public key's default
    statuses = []
    for _ in range(2 * limit):  # forms without a token: cheap, but each one counted
        refused = await api.http.post("/book/dr-berg", data={"name": "x"})
        statuses.append(refused.status_code)
        if refused.status_code != 403:
            break
    # at least `limit` go through (more if a minute turns meanwhile: a sliding window)
    assert statuses[-1] == 429, statuses[-3:]
    assert len(statuses) > limit
    assert Doc(refused.text).one("error")  # the pages' own error page, not JSON
    assert int(refused.headers["retry-after"]) >= 1
    assert (await api.http.get("/book/dr-berg")).status_code == 429
    app = api.http._transport.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as elsewhere:
        assert (await elsewhere.get("/book/dr-berg")).status_code == 200


async def test_a_nul_in_the_form_or_a_time_ending_past_the_dates_is_refused_not_a_500(
    api: Api,
) -> None:
    await make_page(api)
    fields = await _form_for_first_time(api.http)
    r = await api.http.post("/book/dr-berg", data={**fields, "name": "A\x00nn"})
    assert r.status_code == 400  # no column holds a NUL (PostgreSQL answered 500)
    late = "2199-12-31T23:30:00Z"  # the start is in range; its end (+1 h) is not
    r = await api.http.post("/book/dr-berg", data={**fields, "start": late, "duration": "PT60M"})
    assert r.status_code == 422, r.text
    assert Doc(r.text).one("error")
    r = await api.http.get("/book/dr-berg/time", params={"start": late, "duration": "PT60M"})
    assert r.status_code == 404
    assert (await api.get("/v1/bookings")).json()["data"] == []
