"""What a visitor with only a page's link can send, found by the attack pass of 2026-11-30
(docs/security.md): each case here answered 500 before its fix."""

from __future__ import annotations

import httpx

from tests.web.conftest import Api
from tests.web.pages import Doc, make_page


async def _fields(http: httpx.AsyncClient) -> dict[str, str]:
    page = await http.get("/book/dr-berg")
    form = Doc((await http.get(Doc(page.text).all("time")[0]["href"])).text).form("booking-form")
    return {**form["fields"], "name": "Ann", "email": "ann@example.com"}


async def test_a_csrf_cookie_or_field_that_is_not_ascii_is_a_page_not_a_500(api: Api) -> None:
    """`hmac.compare_digest` raises TypeError on a str with a character past ASCII: a cookie
    `sg_csrf=x.é` made every page's GET a 500 (the token is read to be reused), and such a
    field or cookie every form's POST."""
    await make_page(api)
    async with httpx.AsyncClient(transport=api.http._transport, base_url="http://test") as b:
        fields = await _fields(b)
        good = b.cookies["sg_csrf"]
        b.cookies.clear()
        odd = "x.\u00e9".encode()
        page = await b.get("/book/dr-berg", headers={"cookie": b"sg_csrf=" + odd})
        assert page.status_code == 200
        assert page.cookies["sg_csrf"].isascii()  # a new token, as for any invalid cookie
        for cookie, field in ((odd, good), (good.encode(), "x.\u00e9"), (odd, "x.\u00e9")):
            sent = await b.post(
                "/book/dr-berg",
                data={**fields, "csrf_token": field},
                headers={"cookie": b"sg_csrf=" + cookie},
            )
            assert sent.status_code == 403, (cookie, field)
            assert "text/html" in sent.headers["content-type"]
    assert (await api.get("/v1/bookings")).json()["data"] == []


ODD_QUERIES = [
    "tz=localtime",
    "tz=Factory",
    "tz=posix/Europe/Oslo",
    "tz=../../etc/passwd",
    "tz=tzdata.zi",
    "tz=iso3166.tab",
    "tz=Europe/Oslo%0D%0ASet-Cookie:x=y",
    "tz=" + "A" * 5000,
    "week=9999-99-99",
    "week=0001-01-01",
    "week=%C3%A9",
    "duration=P99999Y",
    "duration=%F0%9F%98%80",
    "fragment=week&tz=Pacific/Chatham",
]
ODD_STARTS = [
    "start=2030-01-07T10:00:00%2B99:00",
    "start=%C3%A9",
    "start=2199-12-31T23:59:00Z&duration=PT60M",
    "start=2030-01-07T10:00:00.999999999Z",
    "start=%2B2030-01-07T10:00:00Z",
    "start=2030-W02-1T10:00Z",
    "start=2030-01-07T10:00:00-23:59",
    "start=2030-01-07T10:00:00Z&seat=not-an-id",
]


async def test_odd_page_queries_answer_a_page(api: Api) -> None:
    """Zones zoneinfo reads but lists nowhere, dates out of range, durations no page offers:
    a page, or an error page (2026-11-30: each answered so, none a 500)."""
    await make_page(api)
    for query in ODD_QUERIES:
        r = await api.http.get(f"/book/dr-berg?{query}")
        assert r.status_code == 200, (query, r.status_code)
        assert "Set-Cookie:x" not in str(r.headers)
    for query in ODD_STARTS:
        r = await api.http.get(f"/book/dr-berg/time?{query}")
        assert r.status_code in (200, 404, 409), (query, r.status_code)
        assert "text/html" in r.headers["content-type"]


async def test_a_forms_submission_on_another_apps_page_shows_nothing_of_the_first(
    api: Api, other_api: Api
) -> None:
    """The submission keys a form per page: sent to another app's page, it books there anew
    and the first booking's manage link is not shown."""
    await make_page(api)
    await make_page(other_api, slug="elsewhere")
    async with httpx.AsyncClient(transport=api.http._transport, base_url="http://test") as b:
        fields = await _fields(b)
        first = await b.post("/book/dr-berg", data=fields)
        assert first.status_code == 201
        link = Doc(first.text).all("manage-link")[0]["href"]
        other_form = Doc((await b.get("/book/elsewhere")).text).all("time")[0]["href"]
        other = Doc((await b.get(other_form)).text).form("booking-form")["fields"]
        again = await b.post(
            "/book/elsewhere",
            data={**other, "submission": fields["submission"], "name": "Ann", "email": "a@x.org"},
        )
    assert again.status_code == 201, again.text
    assert link not in again.text


async def test_head_answers_as_get_without_a_body(api: Api) -> None:
    """HEAD /book/{slug} answered 405 (a link checker or a proxy's probe): a page answers HEAD
    with GET's status and headers and no body (RFC 9110 9.3.2), its errors too."""
    await make_page(api)
    async with httpx.AsyncClient(transport=api.http._transport, base_url="http://test") as b:
        for path in ("/book/dr-berg", "/book/no-such-page"):
            got = await b.get(path)
            head = await b.head(path)
            assert head.status_code == got.status_code, path
            assert head.content == b"", path
            assert head.headers["content-type"] == got.headers["content-type"]
            assert head.headers["content-length"] == str(len(got.content))
