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
