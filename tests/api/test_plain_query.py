"""api/plain_query.py: a route answered without FastAPI's per-request machinery answers exactly
as FastAPI's own handler does, for any query string (hypothesis);
the availability search uses it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from starlette.types import ASGIApp, Receive, Scope, Send

from slotgraph.api import problems
from slotgraph.api.app import create_app
from slotgraph.api.deps import PRINCIPAL, AnyKey, Now, Session
from slotgraph.api.plain_query import PlainQueryRoute, _plan
from slotgraph.api.routes.availability import Limit, SlotQuery
from slotgraph.appsettings import AppSettings
from slotgraph.services.common import Principal

T0 = datetime(2031, 3, 3, 9, 30, tzinfo=UTC)


async def echo(
    principal: AnyKey, session: Session, now: Now, query: SlotQuery, limit: Limit = 500
) -> Response:
    """What the endpoint was given, exactly (repr: types and time zones included)."""
    return JSONResponse(
        {"query": repr(query), "limit": limit, "now": repr(now), "caller": principal.kind}
        | {"session": type(session).__name__}
    )


class _Caller:
    """Stands in for the guard: the caller of kind `x-kind` in the request state."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kinds = {k: v for k, v in scope.get("headers", []) if k == b"x-kind"}
        if b"x-kind" in kinds:
            scope.setdefault("state", {})[PRINCIPAL] = Principal(
                app_id=uuid.UUID(int=1),
                key_id=uuid.UUID(int=2),
                kind=kinds[b"x-kind"].decode(),
                settings=AppSettings(),
            )
        await self.app(scope, receive, send)


def _app() -> FastAPI:
    app = FastAPI()
    app.state.clock = lambda: T0
    app.state.sessions = async_sessionmaker(create_async_engine("sqlite+aiosqlite://"))
    app.state.key_cache = {}
    app.router.add_api_route("/plain", echo, methods=["GET"], route_class_override=PlainQueryRoute)
    app.router.add_api_route("/fastapi", echo, methods=["GET"])
    app.add_middleware(_Caller)
    problems.install(app)
    return app


APP = _app()


def test_the_echo_route_has_a_plan() -> None:  # else the comparisons below compare FastAPI twice
    [route] = [
        c.original_route for c in iter_route_contexts(APP.router.routes) if c.path == "/plain"
    ]
    assert isinstance(route, PlainQueryRoute)
    assert _plan(route.dependant) is not None


IDS = [str(uuid.UUID(int=n)) for n in (7, 8, 9)]
VALUES: dict[str, list[str]] = {
    "resource_id": [
        *IDS,
        IDS[0].upper(),
        IDS[1].replace("-", ""),
        f"urn:uuid:{IDS[2]}",
        "{" + IDS[0] + "}",
        "nope",
        "",
    ],
    "start": [
        "2031-03-03T00:00:00Z",
        "2031-03-03T00:00:00+00:00",
        "2031-03-03T01:00:00+01:00",
        "2031-03-03T00:00:00.5Z",
        "2031-03-03T00:00:00.123456-05:30",
        "2031-03-03T00:00:00",
        "2031-03-03",
        "2031-03-03t00:00:00z",
        "1899-12-31T23:59:59Z",
        "2200-01-01T00:00:00Z",
        "1700000000",
        "2031-02-30T00:00:00Z",
        "",
    ],
    "duration": ["PT30M", "PT1H", "P1D", "PT0.5S", "1800", "00:30:00", "-PT30M", "P1W", "PT", ""],
    "step": ["PT15M", "PT1M", "PT30S", "P1D", "P2D", "900", "PT90S", "x", ""],
    "mode": ["any", "all", "ANY", "some", ""],
    "timezone": ["UTC", "Europe/Oslo", "America/New_York", "Mars/Olympus", "utc", "", "x" * 65],
    "limit": ["1", "5000", "5001", "0", "-1", "01", " 5", "1.0", "1e3", "x", ""],
    "other": ["1", ""],
}
VALUES["end"] = VALUES["start"]
NAMES = [*VALUES, "resource_ids", "Start"]


@st.composite
def queries(draw: st.DrawFn) -> str:
    pairs = []
    for _ in range(draw(st.integers(0, 10))):
        name = draw(st.sampled_from(NAMES))
        value = draw(st.sampled_from(VALUES.get(name, ["1"])))
        pairs.append((name, value))
    if draw(st.booleans()):  # most often a plain, complete query
        pairs += [
            ("resource_id", IDS[0]),
            ("start", "2031-03-03T00:00:00Z"),
            ("end", "2031-03-10T00:00:00Z"),
            ("duration", "PT30M"),
        ]
        pairs = draw(st.permutations(pairs))
    safe = draw(st.sampled_from(["", ":", ":+"]))  # how the client escapes the values
    return "&".join(f"{quote(n, safe='')}={quote(v, safe=safe)}" for n, v in pairs)


async def _both(query: str, kind: str | None) -> tuple[httpx.Response, httpx.Response]:
    headers = {} if kind is None else {"x-kind": kind}
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        plain = await http.get(f"/plain?{query}", headers=headers)
        fastapi = await http.get(f"/fastapi?{query}", headers=headers)
    return plain, fastapi


@settings(max_examples=400, deadline=None)
@given(query=queries(), kind=st.sampled_from(["secret", "secret", "public", "customer"]))
async def test_the_plain_route_answers_as_fastapi_does(query: str, kind: str) -> None:
    plain, fastapi = await _both(query, kind)
    assert (plain.status_code, plain.json()) == (fastapi.status_code, fastapi.json()), query


@pytest.mark.parametrize(
    "query",
    [
        "resource_id=00000000-0000-0000-0000-000000000007&start=2031-03-03T00:00:00Z"
        "&end=2031-03-10T00:00:00Z&duration=PT30M&step=PT15M&mode=all&timezone=Europe/Oslo"
        "&limit=7",
        "resource_id=00000000-0000-0000-0000-000000000007&resource_id=00000000-0000-0000-0000"
        "-000000000008&start=2031-03-03T00:00:00%2B01:00&end=2031-03-10T00:00:00Z&duration=P1D",
        "start=2031-03-03T00:00:00Z&end=2031-03-10T00:00:00Z&duration=PT30M",  # 422
        "resource_id=00000000-0000-0000-0000-000000000007&start=2031-03-03T00:00:00"
        "&end=2031-03-10T00:00:00Z&duration=PT30M",  # naive: 422
    ],
)
async def test_plain_and_invalid_queries(query: str) -> None:
    plain, fastapi = await _both(query, "secret")
    assert plain.status_code in (200, 422)
    assert (plain.status_code, plain.json()) == (fastapi.status_code, fastapi.json())
    if plain.status_code == 200:
        assert "datetime.timezone.utc" in plain.json()["query"]


async def test_without_a_caller_fastapi_answers() -> None:
    query = "resource_id=00000000-0000-0000-0000-000000000007&start=2031-03-03T00:00:00Z"
    plain, fastapi = await _both(query + "&end=2031-03-10T00:00:00Z&duration=PT30M", None)
    assert (plain.status_code, plain.json()) == (fastapi.status_code, fastapi.json())
    assert plain.status_code == 401


def test_the_availability_search_takes_the_plain_path() -> None:
    app = create_app()
    routes = [
        c.original_route
        for c in iter_route_contexts(app.router.routes)
        if c.path == "/v1/availability"
    ]
    assert len(routes) == 1
    assert isinstance(routes[0], PlainQueryRoute)
    plan = _plan(routes[0].dependant)
    assert plan is not None
    assert set(plan.fields) == {
        *("resource_id", "start", "end", "duration", "step", "mode", "timezone", "limit")
    }
