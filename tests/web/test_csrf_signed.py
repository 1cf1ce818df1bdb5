"""The pages' CSRF tokens are signed whatever the operator set, over plain HTTP too.

Over plain HTTP the cookie is `sg_csrf`, which a sibling subdomain (`Domain=` the parent) or a
network attacker can set in a visitor's browser; with the same value in the form's field, the
double-submit check passed: tokens were signed only with SLOTGRAPH_CSRF_SECRET, unset by
default. Now, without it, the installation's own secret (made by migration 0014, kept in
`instance_secrets`) signs them, so every process and every restart agrees.
"""

from __future__ import annotations

import hashlib
import hmac

import httpx
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import TEST_SETTINGS, Api, make_api
from tests.web.pages import Doc, make_page


async def _form(http: httpx.AsyncClient) -> tuple[httpx.Response, dict[str, str]]:
    page = await http.get("/book/dr-berg")
    form = Doc((await http.get(Doc(page.text).all("time")[0]["href"])).text).form("booking-form")
    return page, {**form["fields"], "name": "Ann", "email": "ann@example.com"}


def _signed(secret: str, nonce: str) -> str:
    return f"{nonce}.{hmac.new(secret.encode(), nonce.encode(), hashlib.sha256).hexdigest()[:32]}"


async def _installation_secret(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        value = await conn.scalar(text("SELECT value FROM instance_secrets WHERE name = 'csrf'"))
    assert value
    return str(value)


async def _forged(http: httpx.AsyncClient, token: str) -> int:
    """What a form sent with `token` as cookie and field gets (a fresh visitor's form)."""
    async with httpx.AsyncClient(transport=http._transport, base_url="http://test") as b:
        _, fields = await _form(b)
        b.cookies.clear()
        b.cookies.set("sg_csrf", token)
        return (await b.post("/book/dr-berg", data={**fields, "csrf_token": token})).status_code


async def test_over_plain_http_a_planted_cookie_does_not_pass(
    api: Api, engine: AsyncEngine
) -> None:
    await make_page(api)
    async with httpx.AsyncClient(transport=api.http._transport, base_url="http://test") as b:
        page, fields = await _form(b)
    token = fields["csrf_token"]
    nonce = token.partition(".")[0]
    assert page.cookies["sg_csrf"] == token
    # What a sibling subdomain can plant, as cookie and field alike: a value of its own, the
    # nonce with a made-up or no signature, a token of another installation.
    for planted in ("planted-by-a-sibling", nonce, f"{nonce}.{'0' * 32}", _signed("other", nonce)):
        assert await _forged(api.http, planted) == 403, planted
    # Signed with the installation's secret, which the database holds (not the operator's).
    assert token == _signed(await _installation_secret(engine), nonce)
    assert (await api.get("/v1/bookings")).json()["data"] == []
    async with httpx.AsyncClient(transport=api.http._transport, base_url="http://test") as b:
        _, fields = await _form(b)
        assert (await b.post("/book/dr-berg", data=fields)).status_code == 201


async def test_another_server_on_the_same_database_takes_the_form(
    api: Api, engine: AsyncEngine
) -> None:
    """A form from one server process is taken by another (and by the same after a restart):
    the secret is the database's, not the process's."""
    await make_page(api)
    async with httpx.AsyncClient(transport=api.http._transport, base_url="http://test") as b:
        _, fields = await _form(b)
        cookie = b.cookies["sg_csrf"]
    second, _ = await make_api(engine, api.clock)  # a new app: nothing in memory
    async with second:
        second.cookies.set("sg_csrf", cookie)
        assert (await second.post("/book/dr-berg", data=fields)).status_code == 201


async def test_the_operators_secret_wins(api: Api, engine: AsyncEngine) -> None:
    await make_page(api)
    async with httpx.AsyncClient(transport=api.http._transport, base_url="http://test") as b:
        await _form(b)  # the installation's secret is made (the tests' database starts without)
    settings = TEST_SETTINGS.model_copy(update={"csrf_secret": SecretStr("operator-secret")})
    http, _ = await make_api(engine, api.clock, settings)
    async with http:
        _, fields = await _form(http)
        token = fields["csrf_token"]
        assert token == _signed("operator-secret", token.partition(".")[0])
        assert (await http.post("/book/dr-berg", data=fields)).status_code == 201
        # A token the installation's secret signed is not this server's.
        installation = _signed(await _installation_secret(engine), "n" * 32)
        assert await _forged(http, installation) == 403


async def test_an_empty_operator_secret_signs_nothing(api: Api, engine: AsyncEngine) -> None:
    """`SLOTGRAPH_CSRF_SECRET=` (set but empty, as a compose file's `${CSRF_SECRET}` unset gives)
    is no secret: a key anyone knows would sign anyone's token. The installation's signs."""
    await make_page(api)
    settings = TEST_SETTINGS.model_copy(update={"csrf_secret": SecretStr("")})
    http, _ = await make_api(engine, api.clock, settings)
    async with http:
        _, fields = await _form(http)
        token = fields["csrf_token"]
        assert token == _signed(await _installation_secret(engine), token.partition(".")[0])
        assert await _forged(http, _signed("", "n" * 32)) == 403
        assert (await http.post("/book/dr-berg", data=fields)).status_code == 201
