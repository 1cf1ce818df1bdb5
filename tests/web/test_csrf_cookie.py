"""Over HTTPS the pages' CSRF cookie is a `__Host-` cookie, and only that one is read.

The double-submit check trusts that another site cannot set our cookie. A sibling subdomain
(`Domain=` the parent) or a network attacker answering a plain-HTTP request can set a cookie
named `sg_csrf`, and then fill in the form's field with the same value: the check passed (the
default, without SLOTGRAPH_CSRF_SECRET). Browsers accept a `__Host-` cookie only from the host
itself over HTTPS, without `Domain`.
"""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import TEST_SETTINGS, Clock, make_api
from tests.conftest import clean
from tests.web.conftest import Api
from tests.web.pages import Doc, make_page


def browser(api: Api) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=api.http._transport, base_url="https://test")


async def _form(http: httpx.AsyncClient) -> tuple[httpx.Response, dict[str, str]]:
    page = await http.get("/book/dr-berg")
    form = Doc((await http.get(Doc(page.text).all("time")[0]["href"])).text).form("booking-form")
    return page, {**form["fields"], "name": "Ann", "email": "ann@example.com"}


async def test_over_https_a_planted_cookie_does_not_pass_the_check(api: Api) -> None:
    await make_page(api)
    async with browser(api) as visitor:
        page, fields = await _form(visitor)
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("__Host-sg_csrf=")
        assert "secure" in cookie.lower()
        assert "path=/" in cookie.lower()
        assert "domain" not in cookie.lower()
    async with browser(api) as victim:
        # What another site can make the victim's browser hold and send: its own value, as a
        # cookie and in the form.
        victim.cookies.set("sg_csrf", "planted-by-a-sibling")
        forged = await victim.post(
            "/book/dr-berg", data={**fields, "csrf_token": "planted-by-a-sibling"}
        )
        assert forged.status_code == 403
    assert (await api.get("/v1/bookings")).json()["data"] == []
    async with browser(api) as visitor:
        _, fields = await _form(visitor)
        assert (await visitor.post("/book/dr-berg", data=fields)).status_code == 201


async def test_with_an_https_public_url_a_token_signed_for_an_attacker_cannot_be_planted(
    engine: AsyncEngine,
) -> None:
    # Behind a proxy that ends TLS without forwarding the scheme, every request reads `http`.
    # Before, the pages then used the plain `sg_csrf` cookie: a sibling subdomain could plant a
    # token this server signed for the attacker (fetched from any page) and send the victim's
    # browser to post a form with it, and the check passed. With SLOTGRAPH_PUBLIC_URL
    # https://..., the operator says visitors come over HTTPS: the `__Host-` cookie, only.
    await clean(engine)
    settings = TEST_SETTINGS.model_copy(update={"public_url": "https://book.example"})
    http, created = await make_api(engine, Clock(), settings)
    api = Api(http, created.secret_key, created.public_key, Clock(), "")
    async with http:
        await make_page(api)
        page, fields = await _form(http)  # the attacker's own visit, over the proxy's http
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("__Host-sg_csrf=")
        assert "secure" in cookie.lower()
        assert "samesite=none" in cookie.lower()
        token = fields["csrf_token"]
        http.cookies.clear()
        # Planted in the victim's browser as the plain cookie, and sent in the form: refused.
        forged = await http.post(
            "/book/dr-berg", data=fields, headers={"Cookie": f"sg_csrf={token}"}
        )
        assert forged.status_code == 403, forged.text
        assert (await api.get("/v1/bookings")).json()["data"] == []
        # The visitor's own `__Host-` cookie (sent by the browser over HTTPS) passes.
        mine = await http.post(
            "/book/dr-berg", data=fields, headers={"Cookie": f"__Host-sg_csrf={token}"}
        )
        assert mine.status_code == 201, mine.text
