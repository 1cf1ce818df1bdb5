"""api/plain_query.py with a body: a create answered without FastAPI's dependency solving and second
parse of the body answers exactly as FastAPI's own handler does, for any body and content type
(hypothesis); `POST /v1/bookings` uses it, and its description in /openapi.json is unchanged."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from hypothesis import event, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slotgraph.api import problems
from slotgraph.api.app import create_app
from slotgraph.api.deps import AnyKey, Now, Session
from slotgraph.api.guard import check_json_body, replay_body
from slotgraph.api.plain_query import PlainQueryRoute, _plan
from slotgraph.errors import SlotgraphError
from slotgraph.schemas import BookingCreate, BookingCreated
from tests.api.test_plain_query import _Caller

T0 = datetime(2031, 3, 3, 9, 30, tzinfo=UTC)


async def echo(body: BookingCreate, principal: AnyKey, session: Session, now: Now) -> Response:
    """What the endpoint was given, exactly (repr: types and time zones included)."""
    return JSONResponse(
        {"body": repr(body), "now": repr(now), "caller": principal.kind}
        | {"session": type(session).__name__},
        status_code=201,
    )


class _Guard:
    """Stands in for the guard's body check (the caller is `_Caller`'s, as for queries): the body
    read and checked by the guard's own function, which leaves the parsed JSON in the state."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, more = b"", True
        while more:
            message: Message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            check_json_body(scope, body, 32)
        except SlotgraphError as exc:
            await problems.error_for(scope["path"], exc)(scope, receive, send)
            return
        await self.app(scope, replay_body(body, receive), send)


def _app() -> FastAPI:
    app = FastAPI()
    app.state.clock = lambda: T0
    app.state.sessions = async_sessionmaker(create_async_engine("sqlite+aiosqlite://"))
    app.state.key_cache = {}
    app.router.add_api_route(
        "/plain",
        echo,
        methods=["POST"],
        status_code=201,
        response_model=BookingCreated,
        route_class_override=PlainQueryRoute,
    )
    app.router.add_api_route(
        "/fastapi", echo, methods=["POST"], status_code=201, response_model=BookingCreated
    )
    app.add_middleware(_Guard)
    app.add_middleware(_Caller)  # outermost, as the guard authenticates before the body
    problems.install(app)
    return app


APP = _app()


def test_the_echo_route_has_a_plan_with_a_body() -> None:  # else the comparisons compare FastAPI
    [route] = [
        c.original_route for c in iter_route_contexts(APP.router.routes) if c.path == "/plain"
    ]
    assert isinstance(route, PlainQueryRoute)
    plan = _plan(route.dependant)
    assert plan is not None
    assert plan.body is not None
    assert plan.body.name == "body"


ID = str(uuid.UUID(int=7))
AT = ["2031-03-03T10:00:00Z", "2031-03-03T11:00:00+01:00", "2031-03-03T10:00:00.5-05:30"]
VALUES: dict[str, list[Any]] = {
    "graph": ["instant", "confirm_decline", "group_owner", "nope", "", 1, None],
    "resource_id": [ID, ID.upper(), ID.replace("-", ""), f"urn:uuid:{ID}", "nope", 7, None],
    "resource_ids": [[ID], [ID, str(uuid.UUID(int=8))], [], ["x"], ID, None],
    "assign": ["in_order", "least_busy", "all", "ALL", None],
    "override_rules": [True, False, "true", "yes", 1, 0, 2, "x", None],
    "start_time": [*AT, "2031-03-03T10:00:00", "2031-03-03", 1700000000, "x", "", None],
    "end_time": [*AT, "2031-03-03T09:00:00Z", "2031-02-30T10:00:00Z", 1.5, None],
    "client_id": [ID, "", None, []],
    "customer": [{"name": "Ann", "email": "ann@example.com"}, {"name": "Ann"}, {}, "x", None],
    "details": ["hello", "", "x" * 5000, 3, None],
    "meta": [{}, {"a": [1, 2, {"b": None}]}, {"k": "v" * 100}, [], "x", None],
    "payment_timeout": ["PT5M", "PT0S", "P2D", 300, "300", "00:05:00", "-PT5M", "x", None],
    "max_seats": [1, 3, 0, -1, 10**6, "3", 3.0, 3.5, True, None],
    "min_cancel_time": ["PT1H", "P400D", 3600, None],
    "min_booking_time": ["PT1H", "-PT1H", None],
    "max_booking_time": ["P30D", "P10000D", None],
    "owner_booking_id": [ID, "x", None],
    "auto_complete": [True, False, "false", "off", 0, None],
    "notify": [True, False, "n", None],
    "reminder": ["PT24H", "PT0S", "P1000D", 86400, None],
    "unknown": [1, None],
}
PLAIN = {
    "resource_id": ID,
    "client_id": ID,
    "start_time": "2031-03-03T10:00:00Z",
    "end_time": "2031-03-03T11:00:00Z",
}
CONTENT_TYPES = [
    "application/json",
    "application/json",
    "application/json; charset=utf-8",
    "Application/JSON",
    " application/json ;x=1",
    "application/vnd.api+json",
    "application/merge-patch+json",
    "text/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonx",
    "",
    None,
]


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["object", "object", "object", "object", "other", "raw"]))
    if kind == "raw":
        return draw(st.sampled_from([b"", b"{", b"{}x", b"nul", b"\xff\xfe", b" ", b"{'a': 1}"]))
    if kind == "other":
        value: Any = draw(st.sampled_from([[], [PLAIN], None, 1, "x", True, 1.5]))
    else:
        value = dict(PLAIN) if draw(st.integers(0, 3)) else {}
        for _ in range(draw(st.integers(0, 6))):
            name = draw(st.sampled_from(list(VALUES)))
            value[name] = draw(st.sampled_from(VALUES[name]))
        for name in draw(st.lists(st.sampled_from(list(PLAIN)), max_size=2)):
            value.pop(name, None)
    text = json.dumps(value, indent=draw(st.sampled_from([None, 1])), ensure_ascii=False)
    if draw(st.booleans()):  # the same key twice: JSON keeps the last one
        text = text.replace("{", '{"graph": "nope", ', 1) if text.startswith("{") else text
    return text.encode(draw(st.sampled_from(["utf-8", "utf-8", "utf-16"])))


async def _both(
    body: bytes, content_type: str | None, kind: str | None
) -> tuple[httpx.Response, httpx.Response]:
    headers = {} if kind is None else {"x-kind": kind}
    if content_type is not None:
        headers["content-type"] = content_type
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        plain = await http.post("/plain", content=body, headers=headers)
        fastapi = await http.post("/fastapi", content=body, headers=headers)
    return plain, fastapi


def _answer(r: httpx.Response) -> tuple[int, str | None, Any]:
    return r.status_code, r.headers.get("content-type"), r.json()


@settings(max_examples=500, deadline=None)
@given(
    body=bodies(),
    content_type=st.sampled_from(CONTENT_TYPES),
    kind=st.sampled_from(["secret", "secret", "public", "customer"]),
)
async def test_the_plain_route_answers_as_fastapi_does(
    body: bytes, content_type: str | None, kind: str
) -> None:
    plain, fastapi = await _both(body, content_type, kind)
    event(str(plain.status_code))
    assert _answer(plain) == _answer(fastapi), (body, content_type)


async def test_plain_and_refused_bodies() -> None:
    valid = json.dumps(PLAIN).encode()
    naive = json.dumps({**PLAIN, "start_time": "2031-03-03T10:00:00"}).encode()
    cases = [
        (valid, "application/json", 201),
        (valid, None, 415),
        (valid, "text/plain", 415),
        (b"{", "application/json", 400),
        (naive, None, 415),
        (naive, "application/json", 422),
        (json.dumps({**PLAIN, "graph": "nope"}).encode(), "application/json", 422),
    ]
    for body, content_type, status in cases:
        plain, fastapi = await _both(body, content_type, "secret")
        assert _answer(plain) == _answer(fastapi), body
        assert plain.status_code == status, (body, content_type, plain.text)
        if status != 201:
            assert plain.headers["content-type"] == "application/problem+json"
    plain, _ = await _both(valid, "application/json", "secret")
    assert "datetime.timezone.utc" in plain.json()["body"]


async def test_without_a_caller_fastapi_answers() -> None:
    plain, fastapi = await _both(json.dumps(PLAIN).encode(), "application/json", None)
    assert _answer(plain) == _answer(fastapi)
    assert plain.status_code == 401


def test_the_route_class_leaves_the_description_alone() -> None:
    doc = get_openapi(title="t", version="1", routes=APP.routes)
    plain, fastapi = doc["paths"]["/plain"]["post"], doc["paths"]["/fastapi"]["post"]
    for op in (plain, fastapi):
        del op["operationId"]
    assert plain == fastapi


def test_the_create_takes_the_plain_path() -> None:
    app = create_app()
    routes = [
        c.original_route
        for c in iter_route_contexts(app.router.routes)
        if c.path == "/v1/bookings" and "POST" in (c.methods or ())
    ]
    assert len(routes) == 1
    assert isinstance(routes[0], PlainQueryRoute)
    plan = _plan(routes[0].dependant, embed=routes[0]._embed_body_fields)
    assert plan is not None
    assert plan.body is not None
    assert plan.body.field_info.annotation is BookingCreate
