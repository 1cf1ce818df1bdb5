"""The web side's router: HTML errors instead of problem+json, and the static files.

`WebRoute` turns a SlotgraphError raised by a page's service call into the error page, in the
locale the route put on `request.state.web_locale` (English before it knows the page).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from slotgraph import i18n
from slotgraph.errors import SlotgraphError
from slotgraph.i18n import N_
from slotgraph.web.security import load_csrf_secret
from slotgraph.web.templating import STATIC_DIR, STATIC_PREFIX, render

_TITLES = {
    400: N_("The request could not be read"),
    403: N_("This form has expired"),
    404: N_("Not found"),
    409: N_("That did not work"),
    422: N_("Please check what was sent"),
}


def error_page(request: Request, exc: SlotgraphError) -> Response:
    locale = getattr(request.state, "web_locale", i18n.DEFAULT_LOCALE)
    translate = i18n.translations(locale).gettext
    status = exc.status if 400 <= exc.status < 500 else 500
    title = translate(_TITLES.get(status, N_("Something went wrong")))
    detail = translate(exc.detail) if status < 500 else translate(N_("Please try again later."))
    response = render(
        request,
        "error.html",
        {"title": title, "detail": detail, "back": getattr(request.state, "web_back", None)},
        locale=locale,
        frame_ancestors=getattr(request.state, "web_frame_ancestors", ()),
        status_code=status,
    )
    response.headers.update(getattr(exc, "headers", None) or {})  # a 429's Retry-After
    return response


class WebRoute(APIRoute):
    """A route whose errors are HTML pages (error.html), never JSON. A page answers HEAD as it
    answers GET, with the same status and headers and no body (RFC 9110 9.3.2)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.methods and "GET" in self.methods:
            self.methods.add("HEAD")

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                await load_csrf_secret(request.app)
                response = await handler(request)
            except SlotgraphError as exc:
                if exc.status >= 500:
                    raise
                response = error_page(request, exc)
            if request.method == "HEAD":
                return _headers_only(response)
            return response

        return handle


def _headers_only(response: Response) -> Response:
    """The answer to HEAD: GET's status and headers (its Content-Length too), no body."""
    bare = Response(status_code=response.status_code)
    bare.raw_headers = list(response.raw_headers)
    bare.background = response.background
    return bare


class Static(StaticFiles):
    """Our CSS and JS, with `nosniff` and a day of caching."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Cache-Control", "public, max-age=86400")
        return response


def install(app: FastAPI) -> None:
    """Mount the static files (called by api/app.py, which then adds `routers()`)."""
    app.mount(STATIC_PREFIX, Static(directory=STATIC_DIR), name="static")


def routers() -> list[APIRouter]:
    """The web pages' routers, in routing order. A new page module adds its router here."""
    from slotgraph.web import book, manage, owner

    return [book.router, manage.router, owner.router]
