"""/openapi.json as the server really answers: every error status each operation can send.

FastAPI documents only the success answer and a 422 with a shape we never send. Here the document
is built once per app and each operation gets the error answers that follow from what the route
depends on (a rule per dependency, below), with the body that is really sent: RFC 9457
problem+json under /v1, Timekit's `{"error": ...}` under /v2 (api/timekit/errors.py).

- any credentials (`Caller`, `AnyKey`, `SecretKey`): 401 without valid ones, 403 for a kind of
  key the route refuses (a customer token on an API-key route, the public key on a secret-key
  route), 429 when the key or address is over its rate
- a JSON body: 400 malformed JSON, 413 over the body limit, 415 not JSON (/v1), 422
- parameters (path, query, header): 422; a path parameter names an object: 404; a `cursor`
  this API did not return: 400
- `If-Match`: 412 stale, 428 required by the app; `ETag` on a GET: 304
- a database session: 503 when the database cannot be reached; a change also 409
  (`concurrent_update`, and the conflicts of the booking rules)
- /v1 changes take `Idempotency-Key` (api/idempotency.py): 400, 409 in flight, 422 reused

tests/system/test_schemathesis.py checks the live server against the result: a status these
rules miss is an undocumented status there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi

from slotgraph.api import deps
from slotgraph.api.idempotency import WRITES
from slotgraph.api.problems import PROBLEM
from slotgraph.api.timekit.errors import is_timekit
from slotgraph.services.idempotency import MAX_KEY_LENGTH

_WHY = {
    304: "Not modified: the `If-None-Match` ETag is current (no body).",
    400: "Malformed request: the body is not valid JSON, a header or a `cursor` is malformed.",
    401: "No API key, or an unknown one (`Authorization: Bearer <key>`).",
    403: "The key may not do this (the public key lacks the scope).",
    404: "No such object for this app (another app's objects are not found either).",
    409: "Conflict with the current state (`slot_unavailable`, `invalid_action`, "
    "`concurrent_update`, ...): the `code` says which.",
    412: "`If-Match` names a version that is no longer current.",
    413: "The request body is larger than the limit.",
    415: "The body is not sent as JSON (`Content-Type: application/json`).",
    422: "Validation failed: `errors` names each field and where it is (`body`, `query`, ...).",
    428: "The app requires `If-Match` on changes (`require_if_match`).",
    429: "Rate limited: wait for `Retry-After` seconds.",
    503: "The database cannot be reached right now; retry after `Retry-After` seconds.",
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `code` is stable and machine-readable.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "loc", "message", "type"],
                "properties": {
                    "field": {"type": "string"},
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}

TIMEKIT_ERROR_SCHEMA: dict[str, Any] = {
    "title": "TimekitError",
    "description": "An error as Timekit answers it; `code` is slotgraph's stable code.",
    "type": "object",
    "required": ["error", "code"],
    "properties": {
        "error": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "additionalProperties": True,
}

# Searches sent as POST (Timekit's shape): they change nothing, so no write conflicts or scopes.
_SEARCHES = frozenset({("POST", "/v2/availability")})

_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Replays the first answer to a retry with the same key (docs/api.md).",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
}


def install(app: FastAPI) -> None:
    """Replace the app's `openapi()` with the document built here (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["TimekitError"] = TIMEKIT_ERROR_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, method, dependant in operations(app):
        operation = doc["paths"].get(path, {}).get(method.lower())
        if operation is not None:
            _describe(operation, path, method, dependant)
    _rate_limit_ceiling(schemas, app.state.settings.max_app_rate_limit)
    return doc


def _rate_limit_ceiling(schemas: dict[str, Any], ceiling: int) -> None:
    """The operator's ceiling (`SLOTGRAPH_MAX_APP_RATE_LIMIT`) as the `maximum` of the rate
    limits a `PUT /v1/app` may send (`RateLimitsUpdate`, used by `AppSettings`). `RateLimits`,
    as `GET /v1/app` answers it, has none: a value stored before a lower ceiling is shown as
    stored (and counted as the ceiling)."""
    shown = schemas.get("RateLimits")
    if shown is None or "AppSettings" not in schemas:
        return
    sent = {**shown, "title": "RateLimitsUpdate", "properties": {}}
    for name, field in shown["properties"].items():
        sent["properties"][name] = {**field, "maximum": ceiling}
        shown["properties"][name] = {
            **field,
            "description": f"At most this server's ceiling, {ceiling} "
            "(SLOTGRAPH_MAX_APP_RATE_LIMIT); a value stored before a lower ceiling is shown "
            "as stored and counted as the ceiling.",
        }
    schemas["RateLimitsUpdate"] = sent
    schemas["AppSettings"]["properties"]["rate_limits"] = {
        "$ref": "#/components/schemas/RateLimitsUpdate"
    }


def operations(app: FastAPI) -> Iterator[tuple[str, str, Dependant]]:
    """(path, method, dependant) of every operation in the document (routers included)."""
    for route in routing.iter_route_contexts(app.routes):
        if isinstance(route.original_route, routing.APIRoute) and route.include_in_schema:
            dependant: Dependant = route.dependant
            for method in sorted(route.methods or ()):
                yield str(route.path_format), method, dependant


def statuses(path: str, method: str, dependant: Dependant) -> set[int]:
    """The error statuses one operation can answer, from the rules in the module docstring."""
    tree = list(_tree(dependant))
    calls = {d.call for d in tree if d.call is not None}
    named = [p for d in tree for p in d.path_params]
    params = named + [p for d in tree for p in d.query_params + d.header_params]
    body = [p for d in tree for p in d.body_params]
    out: set[int] = set()
    keyed = deps.get_caller in calls or deps.get_principal in calls
    if keyed:
        # every credential check refuses some kind of key: an API key route a customer token
        # (get_principal), a secret-key route the public key, a customer route the public key
        out |= {401, 403, 429}
    if params or body:
        out.add(422)
    if named:
        out.add(404)
    if any(p.alias == "cursor" for d in tree for p in d.query_params):
        out.add(400)  # a cursor this API did not return
    if body:
        out |= {400, 413, 422}
        if not is_timekit(path):
            out.add(415)
    if deps.get_if_match in calls:
        out |= {412, 428}
    if deps.get_tagger in calls and method == "GET":
        out.add(304)
    writes = method in WRITES and (method, path) not in _SEARCHES
    if deps.get_session in calls:
        out.add(503)
        if writes:
            out.add(409)
    if _idempotent(path, method):
        out |= {400, 409, 422}
    return out


def _describe(operation: dict[str, Any], path: str, method: str, dependant: Dependant) -> None:
    responses: dict[str, Any] = {
        code: answer
        for code, answer in operation.get("responses", {}).items()
        if not code.startswith(("4", "5"))
    }
    timekit = is_timekit(path)
    media, schema = ("application/json", "TimekitError") if timekit else (PROBLEM, "Problem")
    for status in sorted(statuses(path, method, dependant)):
        if status == 304:
            responses["304"] = {"description": _WHY[304]}
            continue
        responses[str(status)] = {
            "description": _WHY[status],
            "content": {media: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }
    operation["responses"] = dict(sorted(responses.items()))
    if _idempotent(path, method):
        operation.setdefault("parameters", []).append(_IDEMPOTENCY_KEY)


def _idempotent(path: str, method: str) -> bool:
    return method in WRITES and path.startswith("/v1/")


def _tree(dependant: Dependant) -> Iterator[Dependant]:
    """The route's endpoint and every dependency under it."""
    yield dependant
    for sub in dependant.dependencies:
        yield from _tree(sub)
