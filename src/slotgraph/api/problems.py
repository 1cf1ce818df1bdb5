"""RFC 9457 problem+json for every error the API returns."""

from __future__ import annotations

import logging
from collections.abc import Collection
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, routing
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount

from slotgraph import metrics
from slotgraph.api.timekit import errors as timekit_errors
from slotgraph.db.engine import is_unavailable
from slotgraph.errors import (
    ConcurrentUpdate,
    DatabaseUnavailable,
    InternalError,
    NotModified,
    RateLimited,
    SlotgraphError,
    ValidationFailed,
)

log = logging.getLogger("slotgraph.api")

PROBLEM = "application/problem+json"
# serialization, deadlock (a lock held past lock_timeout is 503 database_busy: db/engine.py)
_RETRYABLE_SQLSTATES = {"40001", "40P01"}
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body = {
        **(extra or {}),
        "type": f"urn:slotgraph:problem:{code}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[int | str, ...] | list[int | str]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts)


def _where(field: str, query: Collection[str]) -> list[str]:
    """The `loc` of a field a service refused: a query parameter's name says `query`."""
    parts = field.split(".")
    return ["query", *parts] if parts[0] in query else ["body", *parts]


def _loc(exc: ValidationFailed, field: str, query: Collection[str]) -> list[str]:
    return [exc.where, *field.split(".")] if exc.where != "body" else _where(field, query)


def _headers(exc: SlotgraphError) -> dict[str, str]:
    """The headers an error carries, whichever shape its body takes (and what it counts or logs
    once): the same on /v1 and /v2."""
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="slotgraph"'
    if isinstance(exc, DatabaseUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
        log.warning("database unavailable: %s", exc.__cause__ or exc.detail)
    if isinstance(exc, RateLimited):
        headers.update(exc.headers)
    if "current_version" in exc.extra:
        headers["ETag"] = f'"{exc.extra["current_version"]}"'
    if exc.code == "slot_unavailable":
        metrics.get().slot_conflicts.inc()
    return headers


def slotgraph_error(exc: SlotgraphError, query: Collection[str] = ()) -> Response:
    """`exc` as problem+json (the /v1 shape)."""
    return error_for("", exc, query)


def error_for(path: str, exc: SlotgraphError, query: Collection[str] = ()) -> Response:
    """`exc` in the shape of the API that `path` belongs to: problem+json, or Timekit's on /v2.
    The one place every error becomes an answer: status, `code` and headers are the same in
    both shapes."""
    if isinstance(exc, NotModified):  # not an error: the client's copy is current; no body
        return Response(status_code=304, headers={"ETag": str(exc.extra["etag"])})
    headers = _headers(exc)
    if timekit_errors.is_timekit(path):
        fields = exc.errors if isinstance(exc, ValidationFailed) else None
        return timekit_errors.render(
            exc.status, exc.code, exc.detail, fields=fields, extra=dict(exc.extra), headers=headers
        )
    extra = dict(exc.extra)
    if isinstance(exc, ValidationFailed):
        extra["errors"] = [
            {"field": f, "loc": _loc(exc, f, query), "message": m, "type": exc.type_of(f)}
            for f, m in exc.errors
        ]
    return problem(exc.status, exc.code, exc.detail, title=exc.title, headers=headers, extra=extra)


def unexpected(exc: Exception, path: str = "") -> Response:
    """An error no handler took (called by api/observe.py, which logs nothing more about it), in
    the shape of the API that `path` belongs to."""
    if isinstance(exc, SlotgraphError):
        return error_for(path, exc)
    if is_unavailable(exc):
        unavailable = DatabaseUnavailable()
        unavailable.__cause__ = exc  # logged: a pool that timed out is not a database that is down
        return error_for(path, unavailable)
    log.error("unhandled error", exc_info=exc)
    return error_for(path, InternalError("An internal error occurred."))


# pydantic's words where they leave out what to do: a naive time was "Input should have
# timezone info", and README's tour says only that naive times are refused.
_TYPE_MESSAGES = {
    "timezone_aware": "Input should have timezone info: add an offset, like "
    "2030-05-18T10:00:00Z or 2030-05-18T12:00:00+02:00",
}


def _message(msg: str) -> str:
    """pydantic prefixes the messages of our own validators; people need only the message."""
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _not_json(request: Request, errors: list[Any]) -> bool:
    """A body was sent, but not as JSON (so FastAPI saw bytes where it wanted an object)."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    is_json = media == "application/json" or media.endswith("+json")
    whole_body = any(tuple(e["loc"]) == ("body",) and e["type"] != "missing" for e in errors)
    return whole_body and not is_json


# `make serve` says it serves http://127.0.0.1:8000, and a browser opened there got "Not Found".
ROOT_DETAIL = (
    "Nothing is served at /: the API lives under /v1 (its reference: /docs), booking pages at "
    "/book/{slug}."
)


def _versioned(request: Request) -> str | None:
    """`/v1<path>` if that is a route: the likely meaning of a path without the version."""
    path = request.url.path
    if path.startswith("/v1/") or path == "/v1":
        return None
    candidate = "/v1" + path
    scope = {**request.scope, "path": candidate}
    for route in request.app.router.routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            return candidate
    return None


def _allowed(request: Request) -> str:
    """`Allow` for a 405: the methods of every route on this path (Starlette names only the
    first route's, and each of our methods is a route of its own)."""
    by_params: dict[int, set[str]] = {}
    for route in routing.iter_route_contexts(request.app.routes):
        if isinstance(route.original_route, Mount):
            continue
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            # the most literal templates name this path (`/bookings/{id}/history`, not
            # `/bookings/{id}/{action}` with action "history")
            params = str(route.path).count("{")
            by_params.setdefault(params, set()).update(route.methods or ())
    return ", ".join(sorted(by_params[min(by_params)])) if by_params else ""


def install(app: FastAPI) -> None:
    @app.exception_handler(SlotgraphError)
    async def _slotgraph(request: Request, exc: SlotgraphError) -> Response:
        return error_for(request.url.path, exc, request.query_params.keys())

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        timekit = timekit_errors.is_timekit(request.url.path)
        if any(e.get("type") == "json_invalid" for e in errors):
            if timekit:
                return timekit_errors.render(
                    400, "malformed_json", "The request body is not valid JSON."
                )
            return problem(400, "malformed_json", "The request body is not valid JSON.")
        if _not_json(request, errors) and not timekit:
            return problem(
                415,
                "unsupported_media_type",
                "Send the request body as JSON, with the header `Content-Type: application/json`.",
            )
        bad_ids = [e for e in errors if e["loc"][0] == "path" and e["type"] == "uuid_parsing"]
        if bad_ids and not timekit:  # an id that cannot exist is simply not found
            name = str(bad_ids[0]["loc"][-1]).removesuffix("_id")
            return problem(404, "not_found", f"No {name} {bad_ids[0]['input']!r}.")
        out = [
            {
                "field": _field(e["loc"]),
                "loc": list(e["loc"]),
                "message": _TYPE_MESSAGES.get(e["type"], _message(e["msg"])),
                "type": e["type"],
            }
            for e in errors
        ]
        detail = "; ".join(f"{o['field'] or 'body'}: {o['message']}" for o in out)
        if timekit:
            fields = [(str(o["field"]), str(o["message"])) for o in out]
            return timekit_errors.render(422, "validation_error", detail, fields=fields)
        return problem(
            422, "validation_error", detail, title="Validation failed", extra={"errors": out}
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and request.url.path == "/":  # where `make serve` points
            detail = ROOT_DETAIL
        elif exc.status_code == 404 and (versioned := _versioned(request)):
            detail = f"No route {request.url.path}; the API lives under /v1: {versioned}."
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed(request)
        if timekit_errors.is_timekit(request.url.path):
            return timekit_errors.render(exc.status_code, code, detail, headers=headers)
        return problem(exc.status_code, code, detail, headers=headers)

    @app.exception_handler(DBAPIError)
    async def _db(request: Request, exc: DBAPIError) -> Response:
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(
            getattr(exc.orig, "__cause__", None), "sqlstate", None
        )
        if sqlstate in _RETRYABLE_SQLSTATES:
            return error_for(request.url.path, ConcurrentUpdate())
        return unexpected(exc, request.url.path)
