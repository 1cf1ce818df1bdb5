"""The app's routes tried by the path's first two segments (api/dispatch.py, ADR 0011): for any
path, every top-level route that FastAPI's own matching says can answer it (fully, or with
another method) is among the candidates, in the router's order, so the route chosen is the one
the router's full loop chooses. No database: this is the routing table alone."""

from __future__ import annotations

import ast
import inspect
import re

import fastapi.applications
import fastapi.routing
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import iter_route_contexts
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Match

from slotgraph.api import dispatch
from slotgraph.api.app import add_routes, create_app
from slotgraph.api.dispatch import PrefixDispatch
from tests.api.conftest import TEST_SETTINGS

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(TEST_SETTINGS)


def _dispatch(app: FastAPI) -> PrefixDispatch:
    dispatch = app.router.middleware_stack
    assert isinstance(dispatch, PrefixDispatch)
    return dispatch


def _scope(method: str, path: str) -> dict[str, object]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}


def _check(app: FastAPI, path: str) -> None:
    candidates = _dispatch(app).candidates(path)
    routes = list(app.router.routes)
    positions = [routes.index(c) for c in candidates]
    assert positions == sorted(positions), "candidates keep the router's order"
    for method in METHODS:
        for route in routes:
            match, _ = route.matches(_scope(method, path))
            if match != Match.NONE:
                assert route in candidates, (method, path, route)


def _concrete(template: str) -> list[str]:
    """Paths a template matches, and near misses: its parameters filled in, a trailing slash,
    one segment more, the last segment changed."""
    filled = re.sub(r"\{[^}:]+:path\}", "a/b", template)
    filled = re.sub(r"\{[^}]+\}", "x1", filled)
    return [filled, filled + "/", filled + "/more", filled.rsplit("/", 1)[0] + "/other", "/"]


def test_every_route_of_the_app_is_a_candidate_for_its_own_paths(app: FastAPI) -> None:
    templates = [c.path for c in iter_route_contexts(app.router.routes) if c.path]
    assert len(templates) > 90  # /v1, /v2, the booking pages, docs, probes, /static
    for template in templates:
        for path in _concrete(template):
            _check(app, path)


def _segments(app: FastAPI) -> list[str]:
    found = set()
    for c in iter_route_contexts(app.router.routes):
        for segment in (c.path or "").split("/"):
            found.add(segment)
    return sorted(found | {"", "x1", "a", "{x}"})


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_path_has_every_route_that_can_match_it_among_its_candidates(
    app: FastAPI, data: st.DataObject
) -> None:
    parts = data.draw(st.lists(st.sampled_from(_segments(app)), min_size=0, max_size=4))
    _check(app, "/" + "/".join(parts))


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/ping", 401),  # a route late in the table, found: its guard answers
        ("GET", "/healthz", 200),
        ("POST", "/healthz", 405),  # the path matches another method: 405 as before
        ("GET", "/v1/nothing-here", 404),
        ("GET", "/nothing/at/all", 404),
        ("GET", "/static/", 404),
    ],
)
async def test_answers_are_the_routers_own(
    app: FastAPI, method: str, path: str, status: int
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        r = await http.request(method, path)
    assert r.status_code == status, r.text


@pytest.mark.slow  # about 1,000 requests on each side
async def test_every_path_is_answered_as_by_the_routers_own_loop(engine: AsyncEngine) -> None:
    """The same answers (status, redirect target, body) with the dispatch and without it, for
    the paths of every route and their near misses, without a key (the guard answers 401 for a
    keyed route before routing; the rest reach the router: pages, probes, docs, 404, 405 and
    trailing-slash redirects)."""
    indexed = create_app(TEST_SETTINGS, engine=engine)
    plain = create_app(TEST_SETTINGS, engine=engine)
    plain.router.middleware_stack = plain.router.app  # FastAPI's own loop over every route
    paths = sorted(
        {p for c in iter_route_contexts(plain.router.routes) if c.path for p in _concrete(c.path)}
    )
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=indexed), base_url="http://t") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=plain), base_url="http://t") as b,
    ):
        for path in paths:
            for method in ("GET", "POST"):
                one, other = await a.request(method, path), await b.request(method, path)
                assert (one.status_code, one.headers.get("location")) == (
                    other.status_code,
                    other.headers.get("location"),
                ), (method, path)
                if not path.startswith("/metrics"):  # counts the requests just made
                    assert one.content == other.content, (method, path)


async def test_routes_added_after_the_first_request_are_found() -> None:
    """The index is kept between requests: a route added later (a router included, a route
    added to an included router, a route added to the app, FastAPI's or Starlette's way, a
    module's router added as create_app adds them, a mount, a host) must still be answered. (A path
    that no candidate matches at all goes to the router's own loop, so most stale indexes would
    still answer; one that offers a route for the path but not the method would not.)"""
    app = create_app(TEST_SETTINGS)
    late = APIRouter(prefix="/late")

    async def answer() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_api_route("/late-four", answer)
    app.add_api_route("/late-five/{x}", answer)  # GET only: what a later mount and host meet
    module = APIRouter()  # made before the first request, as a module's router is at import
    module.add_api_route("/late-four", answer, methods=["PATCH"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.get("/late-four")).status_code == 200  # the index is built
        # Another method on that path: a stale index offers only the GET route, which matches
        # the path but not the method (405), and looks no further.
        app.add_api_route("/late-four", answer, methods=["POST"])
        assert (await http.post("/late-four")).status_code == 200
        late.add_api_route("/one", answer)
        app.include_router(late)
        assert (await http.get("/late/one")).status_code == 200
        late.add_api_route("/one", answer, methods=["POST"])  # to a router included already
        assert (await http.post("/late/one")).status_code == 200
        app.add_route("/late-four", plain, methods=["PUT"])  # Starlette's way, on FastAPI's router
        assert (await http.put("/late-four")).text == "plain"
        add_routes(app, module)  # as create_app adds a module's router (api/app.py)
        assert (await http.patch("/late-four")).status_code == 200
        # A mount (Starlette's way, which FastAPI's versions did not see): a stale index offers
        # the GET route alone for a POST under it (405, as a mount made late was answered).
        app.mount("/late-five", PlainTextResponse("mounted"))
        assert (await http.post("/late-five/a")).text == "mounted"
        app.host("other.example", PlainTextResponse("hosted"))
        hosted = await http.post("/late-five/a", headers={"host": "other.example"})
        assert hosted.text == "mounted"  # the mount comes first, as in the router's own loop
        deleted = await http.delete("/late-four", headers={"host": "other.example"})
        assert deleted.text == "hosted"  # no route of the path takes DELETE: the host does


async def plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("plain")


def test_fastapi_moves_its_routes_versions_only_where_the_dispatch_counts() -> None:
    """The index (and the guard's and the idempotency middleware's tables) is built again when
    `_changes` moves, which counts the calls of FastAPI's private
    `APIRouter._mark_routes_changed` (dispatch.py; api/app.py's add_routes calls it too). A
    FastAPI that renamed it fails at the import of dispatch.py (and mypy, for add_routes); one
    that stopped calling it fails the test above; one that moved a routes version anywhere
    else (a new way to add routes, bumping it itself) fails here, rather than leave a route
    added after the first request unfound (ADR 0011)."""
    assert APIRouter._mark_routes_changed is dispatch._counted_mark_routes_changed
    assert (APIRouter.mount, APIRouter.host) == (dispatch._counted_mount, dispatch._counted_host)
    writers = set()
    for module in (fastapi.routing, fastapi.applications):
        for function in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(function):
                    if isinstance(node, ast.Assign):
                        targets = node.targets
                    elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                        targets = [node.target]
                    else:
                        continue
                    if any(getattr(t, "attr", None) == "_routes_version" for t in targets):
                        writers.add(function.name)
    assert writers == {"__init__", "_mark_routes_changed"}
