"""The web side's frame: static files, headers, CSRF, HTML errors, catalogues.

A small app with one form on `WebRoute` exercises what every page (booking, manage, owner) uses.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from slotgraph import i18n
from slotgraph.api.app import create_app
from slotgraph.errors import NotFound
from slotgraph.settings import Settings
from slotgraph.web.forms import read_form
from slotgraph.web.routing import WebRoute
from slotgraph.web.security import CSRF_COOKIE, check_csrf
from slotgraph.web.templating import render

WEB = Path(i18n.LOCALES_DIR).parent


def _app(settings: Settings) -> FastAPI:
    app = FastAPI()
    app.state.settings = settings
    router = APIRouter(route_class=WebRoute)

    @router.get("/form")
    async def form(request: Request, lang: str = "en") -> Response:
        request.state.web_locale = lang
        return render(
            request,
            "error.html",
            {"title": "T", "detail": "D", "back": None},
            locale=lang,
            frame_ancestors=["https://shop.example"],
        )

    @router.post("/form")
    async def post(request: Request, lang: str = "en") -> Response:
        request.state.web_locale = lang
        check_csrf(request, await read_form(request))
        return Response("ok")

    @router.get("/missing")
    async def missing(request: Request) -> Response:
        raise NotFound("There is no such page.")

    app.include_router(router)
    return app


@pytest.fixture
async def http() -> httpx.AsyncClient:
    # No database here: the secret is the operator's (the installation's own is the real app's,
    # tests/web/test_csrf_signed.py).
    app = _app(Settings(csrf_secret="s3cret"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        yield client


async def test_every_page_carries_the_security_headers(http: httpx.AsyncClient) -> None:
    r = await http.get("/form")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'self' https://shop.example" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["content-type"].startswith("text/html")
    assert "<script>" not in r.text
    assert "style=" not in r.text


async def test_a_form_post_needs_the_cookie_and_the_same_token(http: httpx.AsyncClient) -> None:
    await http.get("/form")
    token = http.cookies[CSRF_COOKIE]
    ok = await http.post("/form", data={"csrf_token": token})
    assert ok.status_code == 200, ok.text
    forged = await http.post("/form", data={"csrf_token": "guessed"})
    assert forged.status_code == 403
    assert "text/html" in forged.headers["content-type"]
    assert "This form has expired" in forged.text
    http.cookies.clear()
    no_cookie = await http.post("/form", data={"csrf_token": token})
    assert no_cookie.status_code == 403


async def test_the_token_in_the_page_is_the_cookie(http: httpx.AsyncClient) -> None:
    # error.html has no form; the token is in the context of every page, and the cookie is set.
    r = await http.get("/form")
    assert r.cookies[CSRF_COOKIE]
    again = await http.get("/form")
    assert CSRF_COOKIE not in again.cookies or again.cookies[CSRF_COOKIE] == r.cookies[CSRF_COOKIE]


async def test_a_signed_token_is_refused_by_another_secret() -> None:
    first = _app(Settings(csrf_secret="one"))
    second = _app(Settings(csrf_secret="two"))
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://t") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://t") as b,
    ):
        await a.get("/form")
        token = a.cookies[CSRF_COOKIE]
        b.cookies.set(CSRF_COOKIE, token)
        r = await b.post("/form", data={"csrf_token": token})
        assert r.status_code == 403


async def test_errors_are_html_pages_in_the_locale(http: httpx.AsyncClient) -> None:
    r = await http.get("/missing")
    assert r.status_code == 404
    assert "<h1" in r.text
    assert "Not found" in r.text
    de = await http.post("/form?lang=de", data={"csrf_token": "x"})
    assert de.status_code == 403
    assert "Dieses Formular ist abgelaufen" in de.text
    assert '<html lang="de">' in de.text


async def test_a_form_that_is_not_urlencoded_is_a_400_page(http: httpx.AsyncClient) -> None:
    r = await http.post("/form", content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "text/html" in r.headers["content-type"]


async def test_static_files_are_served_by_the_app() -> None:
    app = create_app(Settings(run_worker=False))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        js = await http.get("/static/booking.js")
        css = await http.get("/static/slotgraph.css")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert css.status_code == 200
    assert css.headers["x-content-type-options"] == "nosniff"


def _msgids() -> set[str]:
    """Every string the pages and the customer's emails (notifications/) translate."""
    templates = ("**/templates/**.html", "**/templates/**.txt", "**/templates/**.subject")
    method_map = [*((t, "jinja2") for t in templates), ("**.py", "python")]
    options = {t: {"extensions": "jinja2.ext.i18n"} for t in templates}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found: set[str] = set()
    for where in (WEB, WEB.parent / "notifications"):
        for _file, _line, message, _comments, _ctx in extract_from_dir(
            str(where), method_map, options, keywords=keywords
        ):
            found.update([message] if isinstance(message, str) else [m for m in message if m])
    return found


@pytest.mark.parametrize("locale", [loc for loc in i18n.available_locales() if loc != "en"])
def test_every_string_has_a_translation(locale: str) -> None:
    path = WEB / "locales" / f"{locale}.po"
    ids = re.findall(r'^msgid "(.+)"$', path.read_text("utf-8"), re.MULTILINE)
    assert len(ids) == len(set(ids)), "a msgid twice: only one of its translations is used"
    with path.open("rb") as f:
        catalog = read_po(f)
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    missing = _msgids() - {i if isinstance(i, str) else i[0] for i in translated}
    assert not missing, f"{locale}.po lacks: {sorted(missing)}"


def test_german_is_a_locale_and_english_the_fallback() -> None:
    assert {"en", "de"} <= set(i18n.available_locales())
    assert i18n.catalogue_for("de_AT") == "de"
    assert i18n.catalogue_for("fr") == "en"
