"""A route class that answers plain queries and bodies without FastAPI's per-request machinery.

FastAPI resolves a route's dependencies and validates each query parameter on its own, with
context for its error messages, per request: for `GET /v1/availability` that was 0.4-0.9 ms of CPU,
a fifth of a `limit=1` search (docs/benchmarks.md). `PlainQueryRoute` keeps the route
as declared (the same parameters, dependencies and OpenAPI description) and answers a request
itself when its query string is plain:

- every parameter is one the route declares, each at most once (a list parameter any number of
  times), and the query string is printable ASCII;
- the values are valid for the very field definitions FastAPI took from the route's signature,
  validated together in one pydantic call;
- the guard (api/guard.py) has authenticated the caller, and the route needs only `AnyKey`,
  `Session` and `Now` besides its query;
- a route with a body (one pydantic model, not embedded: `POST /v1/bookings`) is sent
  `Content-Type: application/json`, and the JSON object the guard parsed from it (the very
  `json.loads` FastAPI would run again) is valid for the route's own body field, validated by that
  field as FastAPI validates it. A create spent about a seventh of its CPU in FastAPI's
  dependency solving and second parse of the body (docs/benchmarks.md).

Anything else (an unknown, repeated, missing or invalid parameter, an odd character, another
content type, a body that is not a valid object) goes to FastAPI's own handler, so every error
answer is FastAPI's, unchanged. The endpoint function itself runs either way: the route's
behaviour has one place.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import parse_qsl

from fastapi import params
from fastapi._compat import ModelField
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError, create_model
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from slotgraph.api.deps import PRINCIPAL, get_now, get_principal, get_session
from slotgraph.api.guard import JSON_BODY, header

_session = asynccontextmanager(get_session)
_KNOWN = {get_principal: "principal", get_session: "session", get_now: "now"}


class PlainQueryRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        plan = _plan(self.dependant, embed=self._embed_body_fields)
        if plan is None:  # not a shape this class knows: FastAPI's handler only
            return handle
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            principal = request.scope.get("state", {}).get(PRINCIPAL)
            values = plan.parse(request.scope["query_string"]) if principal is not None else None
            if values is None:
                return await handle(request)
            arguments = await plan.arguments(values)
            if plan.body is not None:
                body = plan.validate_body(request.scope)
                if body is None:
                    return await handle(request)
                arguments[plan.body.name] = body
            arguments[plan.principal] = await get_principal(principal)
            arguments[plan.now] = await get_now(request)
            async with _session(request) as session:
                arguments[plan.session] = session
                answer: Response = await endpoint(**arguments)
            return answer

        return handler


class _Plan:
    """How to read one route's query: its parameters (by their names in the URL), the model that
    validates them together, and which endpoint argument each value or dependency fills."""

    def __init__(
        self,
        fields: dict[str, tuple[str, str | None, bool]],
        model: type[BaseModel],
        known: dict[str, str],
        groups: dict[str, Callable[..., Any]],
        body: ModelField | None,
    ) -> None:
        self.fields = fields  # alias -> (model field, dependency argument or None, is a list)
        self.model = model
        self.principal, self.session, self.now = known["principal"], known["session"], known["now"]
        self.groups = groups  # dependency argument -> the function of query parameters
        self.body = body  # the route's body field (one model), if it takes a body

    def validate_body(self, scope: Scope) -> Any:
        """The body's model, or None unless it is JSON (exactly `application/json`), an object,
        and valid for the route's body field (FastAPI's own, called as FastAPI calls it)."""
        assert self.body is not None
        value = scope.get("state", {}).get(JSON_BODY)
        media = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if not isinstance(value, dict) or media != "application/json":
            return None
        model, errors = self.body.validate(value, {}, loc=("body",))
        return None if errors else model

    def parse(self, query: bytes) -> dict[str, Any] | None:
        """The validated values by model field, or None when the query is not plain."""
        if not query.isascii():
            return None
        text = query.decode("ascii")
        if not text.isprintable():
            return None
        given: dict[str, Any] = {}
        for name, value in parse_qsl(text, keep_blank_values=True):
            field = self.fields.get(name)
            if field is None or not value:
                return None
            if field[2]:
                given.setdefault(name, []).append(value)
            elif name in given:
                return None
            else:
                given[name] = value
        try:
            return dict(self.model.model_validate(given))
        except ValidationError:
            return None

    async def arguments(self, values: dict[str, Any]) -> dict[str, Any]:
        """The endpoint's keyword arguments from the validated values (dependencies called)."""
        out: dict[str, Any] = {}
        grouped: dict[str, dict[str, Any]] = {}
        for name, target, _ in self.fields.values():
            if target is None:
                out[name] = values[name]
            else:
                grouped.setdefault(target, {})[name] = values[name]
        for target, kwargs in grouped.items():
            call = self.groups[target]
            made = call(**kwargs)
            out[target] = await made if inspect.isawaitable(made) else made
        return out


def _plan(dependant: Dependant, *, embed: bool = False) -> _Plan | None:
    """A plan for a route whose dependencies are the caller, the session, the clock and plain
    functions of query parameters, with at most one body (a model, not `embed`ded); None for
    any other route."""
    fields: dict[str, tuple[str, str | None, bool]] = {}
    definitions: dict[str, Any] = {}
    known: dict[str, str] = {}
    groups: dict[str, Callable[..., Any]] = {}

    def add(target: str | None, params: Any) -> bool:
        for field in params:
            if field.name in definitions:
                return False
            definitions[field.name] = (field.field_info.annotation, field.field_info)
            is_list = getattr(field.field_info.annotation, "__origin__", None) is list
            fields[field.alias] = (field.name, target, is_list)
        return True

    if dependant.path_params or dependant.header_params or dependant.cookie_params:
        return None
    body = _body_field(dependant, embed)
    if body is False or not add(None, dependant.query_params):
        return None
    for dep in dependant.dependencies:
        if dep.call in _KNOWN and dep.name:
            known[_KNOWN[dep.call]] = dep.name
        elif (
            dep.call is not None
            and dep.name
            and not dep.dependencies
            and not (dep.path_params or dep.header_params or dep.cookie_params or dep.body_params)
            and not inspect.isasyncgenfunction(dep.call)
            and not inspect.isgeneratorfunction(dep.call)
        ):
            if not add(dep.name, dep.query_params):
                return None
            groups[dep.name] = dep.call
        else:
            return None
    if set(known) != {"principal", "session", "now"}:
        return None
    model = create_model("PlainQuery", **definitions)
    return _Plan(fields, model, known, groups, body)


def _body_field(dependant: Dependant, embed: bool) -> ModelField | Literal[False] | None:
    """The route's body field if it is one pydantic model, the whole body; None without a body;
    False for any other body (embedded, several, a form, not a model)."""
    if not dependant.body_params:
        return None
    [field, *others] = dependant.body_params
    annotation = field.field_info.annotation
    if (
        others
        or embed
        or isinstance(field.field_info, params.Form)
        or not (isinstance(annotation, type) and issubclass(annotation, BaseModel))
    ):
        return False
    return field
