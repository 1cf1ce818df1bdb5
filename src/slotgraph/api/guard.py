"""The guard: what every request passes before any route sees it (docs/security.md, ADR 0010).

In this order, and before a byte of the body is read:
1. a browser's CORS preflight is answered (api/cors.py): only for the public key's routes;
2. find the route and the caller it needs (from its dependencies: `SecretKey`, `AnyKey`,
   `SecretOrCustomer`, `Caller` or none);
3. authenticate: no key or an unknown one is 401, a key outside the route's scope 403, whatever
   the body is (malformed, or 100 MB); CORS headers are added for the key's allowed origins. An
   address that sent more than `SLOTGRAPH_BAD_KEY_LIMIT` unknown keys in the last minute is 429
   before its key is looked up (unless the key was valid lately: api/ratelimit.py);
4. count the request against the app's rate limits (api/ratelimit.py): 429 past them; a
   booking page (no key) is counted per client address with the public key's default limit;
   all but the secret key's also per address across every app (ADR 0021);
then the body is read, counting, and refused with 413 as soon as it is over
`SLOTGRAPH_MAX_BODY_BYTES` (chunked bodies without Content-Length too), and with 408 if it has not
all come within `SLOTGRAPH_BODY_TIMEOUT_SECONDS` (a client that trickles it); a client that leaves
before its body is complete gets nothing run (the route would have seen part of it). A JSON body is
parsed once here and refused with 422 naming the field if it holds what no column can store:
nesting deeper than `SLOTGRAPH_MAX_JSON_DEPTH`, integers outside 64 bits, NUL characters, lone
surrogates, non-finite numbers. The query string and the path are checked for NULs. The route then
gets the same bytes, and the caller in the request state (api/deps.py reads it from there), and the
JSON value parsed here (api/plain_query.py validates it, instead of FastAPI parsing the bytes
again).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slotgraph.api import cors
from slotgraph.api.deps import (
    PRINCIPAL,
    Need,
    admit,
    client_ip,
    get_caller,
    get_principal,
    principal_for,
    require_secret,
    require_secret_or_customer,
)
from slotgraph.api.dispatch import FromRoutes
from slotgraph.api.problems import error_for
from slotgraph.api.ratelimit import Limiter
from slotgraph.api.timekit.errors import is_timekit
from slotgraph.appsettings import AppSettings
from slotgraph.errors import (
    Forbidden,
    PayloadTooLarge,
    RequestTimeout,
    SlotgraphError,
    ValidationFailed,
)
from slotgraph.services.common import Principal
from slotgraph.web.routing import WebRoute, error_page

_NEEDS: tuple[tuple[object, Need], ...] = (  # the narrowest first
    (require_secret, "secret"),
    (require_secret_or_customer, "secret_or_customer"),
    (get_principal, "any"),
    (get_caller, "caller"),
)
# The booking pages' visitors (no key): counted per client address with the public key's
# default limit, so a page books and sends emails no faster than the public key would.
VISITOR = Principal(
    app_id=uuid.UUID(int=0), key_id=uuid.UUID(int=0), kind="public", settings=AppSettings()
)
JSON_BODY = "json_body"  # where the guard leaves a JSON body it parsed, in the request state
INT_RANGE = (-(2**63), 2**63 - 1)  # what a BIGINT (and JSON in either database) holds exactly
_TOO_DEEP = "JSON is nested deeper than {} levels (max_json_depth)"


def route_need(route: APIRoute) -> Need:
    """The caller a route needs, read from its dependencies (one source of truth: the route)."""
    calls = {d.call for d in _dependencies(route.dependant)}
    for dependency, need in _NEEDS:
        if dependency in calls:
            return need
    return "none"


def counts_visitors(route: APIRoute, need: Need) -> bool:
    """Whether a route's callers are counted per client address with the public key's default
    limit: every route without a key that the API documents (the booking pages, the secret
    calendar feed, whose token is looked up per request), not the operator's probes (/healthz,
    /readyz, /metrics) and docs, which a load balancer must always reach."""
    return need == "none" and (isinstance(route, WebRoute) or route.include_in_schema)


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dep in dependant.dependencies:
        yield dep
        yield from _dependencies(dep)


def route_table(app: Any) -> list[tuple[re.Pattern[str], frozenset[str], APIRoute]]:
    """Every API route as (path pattern, methods, route), in the order the router tries them."""
    table = []
    for context in iter_route_contexts(app.router.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path:
            pattern, _, _ = compile_path(context.path)
            table.append((pattern, frozenset(context.methods or ()), route))
    return table


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        root: Any,
        limiter: Limiter,
        max_body_bytes: int,
        max_json_depth: int,
        body_timeout_seconds: float = 30.0,
    ) -> None:
        self.app = app
        self.root = root  # the FastAPI app, whose routes say which key each needs
        self.limiter = limiter
        self.max_body = max_body_bytes
        self.max_depth = max_json_depth
        self.body_seconds = body_timeout_seconds
        self._table: FromRoutes[list[tuple[re.Pattern[str], frozenset[str], Need, bool, bool]]]
        self._table = FromRoutes()

    def route(self, method: str, path: str) -> tuple[Need, bool, bool]:
        """The key a route needs ("none" for no route: the router answers 404), whether it is
        a web page (whose errors are HTML), and whether its callers are counted per address as
        visitors (`counts_visitors`)."""
        table = self._table.get(
            lambda: [
                (p, m, need, isinstance(r, WebRoute), counts_visitors(r, need))
                for p, m, r in route_table(self.root)
                for need in (route_need(r),)
            ]
        )
        for pattern, methods, need, web, visitors in table:
            if method in methods and pattern.match(path):
                return need, web, visitors
        return "none", False, False

    def need(self, method: str, path: str) -> Need:
        return self.route(method, path)[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = header(scope, b"origin")
        if origin and scope["method"] == "OPTIONS":
            requested = header(scope, b"access-control-request-method")
            if requested:
                answer = await self.preflight(scope, cors.normalised(origin), requested.upper())
                await answer(scope, receive, send)
                return
        need, web, visitors = self.route(scope["method"], scope["path"])
        try:
            if need != "none":
                principal = await self.authenticate(scope, need)
                scope.setdefault("state", {})[PRINCIPAL] = principal
                if origin and _allows(principal, need, cors.normalised(origin)):
                    send = cors.allowing(send, cors.normalised(origin))
                await self.limiter.check(principal, client_ip(scope))
            elif visitors:  # no key (a booking page, a feed): counted per address, as one
                await self.limiter.check(VISITOR, client_ip(scope))
            _check_address(scope)
            body = await self.read_body(scope, receive)
            check_json_body(scope, body, self.max_depth)
        except _ClientLeft:
            return  # nobody to answer, and a part of a body is not the request
        except SlotgraphError as exc:
            answer = error_page(Request(scope), exc) if web else error_for(scope["path"], exc)
            if isinstance(exc, RequestTimeout):  # the rest of the body may still come: end here
                answer.headers["Connection"] = "close"
            await answer(scope, receive, send)
            return
        await self.app(scope, replay_body(body, receive), send)

    async def preflight(self, scope: Scope, origin: str, method: str) -> Response:
        """A browser asks whether a page at `origin` may send `method` here: yes for a public-key
        route and an origin some app allows (the real request is checked against the key's app);
        never for a secret-key route."""
        need = self.need(method, scope["path"])
        if need == "any" and await cors.allowed_anywhere(scope["app"], origin):
            return cors.preflight(origin, method, timekit=is_timekit(scope["path"]))
        why = (
            "only the public key's routes may be called from a browser"
            if need != "any"
            else f"no app lists {origin} in allowed_origins"
        )
        return error_for(scope["path"], Forbidden(f"Cross-origin request refused: {why}."))

    async def authenticate(self, scope: Scope, need: Need) -> Principal:
        principal = await principal_for(
            scope["app"], header(scope, b"authorization"), client_ip(scope)
        )
        admit(principal, need)
        return principal

    async def read_body(self, scope: Scope, receive: Receive) -> bytes:
        too_large = PayloadTooLarge(
            f"The request body is larger than {self.max_body} bytes (the server's max_body_bytes).",
            max_body_bytes=self.max_body,
        )
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise too_large
        if declared in (None, "0") and header(scope, b"transfer-encoding") is None:
            return await self._read(receive, too_large)  # no body: its end came with the head
        try:
            async with asyncio.timeout(self.body_seconds):
                return await self._read(receive, too_large)
        except TimeoutError:
            raise RequestTimeout(
                f"The request body did not arrive within {self.body_seconds:g} seconds "
                "(the server's body_timeout_seconds).",
                body_timeout_seconds=self.body_seconds,
            ) from None

    async def _read(self, receive: Receive, too_large: PayloadTooLarge) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientLeft
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


class _ClientLeft(Exception):
    """The client closed its connection before its body was complete."""


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _allows(principal: Principal, need: Need, origin: str) -> bool:
    """CORS for a real request: public-key routes, the public key, an origin its app lists."""
    return (
        need == "any"
        and principal.kind == "public"
        and origin in principal.settings.allowed_origins
    )


def _is_json(scope: Scope) -> bool:
    """As FastAPI decides: a JSON Content-Type is parsed as JSON (none at all is 415)."""
    content_type = header(scope, b"content-type") or ""
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _check_address(scope: Scope) -> None:
    if "\x00" in scope["path"]:
        raise ValidationFailed.one("path", "must not contain NUL characters", where="path")
    raw: bytes = scope.get("query_string", b"")
    if b"\x00" not in raw and b"%00" not in raw:
        return  # only a NUL byte or "%00" decodes to a NUL: no need to parse (9 us for a search)
    query = raw.decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            field = name.replace("\x00", "") or "query"
            raise ValidationFailed.one(field, "must not contain NUL characters", where="query")


def check_json_body(scope: Scope, body: bytes, max_depth: int) -> None:
    """Parse a JSON body (as Starlette's `Request.json` does: `json.loads` of the bytes), refuse
    what no column can hold (422), and leave the value in the request state (`JSON_BODY`)."""
    if not body or not _is_json(scope):
        return
    try:
        value = json.loads(body)
    except RecursionError:
        raise ValidationFailed.one("body", _TOO_DEEP.format(max_depth)) from None
    except ValueError:
        return  # not JSON: the route answers 400 malformed_json in its own shape
    problem = _first_problem(value, max_depth)
    if problem is not None:
        raise ValidationFailed.one(*problem)
    scope.setdefault("state", {})[JSON_BODY] = value


def _first_problem(value: Any, max_depth: int) -> tuple[str, str] | None:
    """The first value no database column can hold, as (field path, message)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= max_depth:
                return (path or "body", _TOO_DEEP.format(max_depth))
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str) and (message := _bad_text(key)):
                    return (_join(path, "(key)"), f"a key {message}")
                stack.append((child, _join(path, key), depth + 1))
        elif isinstance(item, str):
            if message := _bad_text(item):
                return (path or "body", message)
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not INT_RANGE[0] <= item <= INT_RANGE[1]:
                return (path or "body", "integers must be between -2^63 and 2^63-1")
        elif isinstance(item, float) and not math.isfinite(item):
            return (path or "body", "numbers must be finite")
    return None


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _bad_text(text: str) -> str | None:
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain lone surrogates (invalid Unicode)"
    return None


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body read here, then whatever comes next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
