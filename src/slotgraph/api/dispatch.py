"""The app's routes tried by the first two segments of the path (ADR 0011).

FastAPI's router tries its routes in order, each included router testing all of its own, until
one matches: a request for `/v1/ping` tested the resources', availability's, bookings', ... routes
first, 90 us of a 0.9 ms request's CPU (a request for `/book/...` 130 us). `PrefixDispatch` sits
where the router's own loop is called (`router.middleware_stack`) and tries only the top-level
routes that can match the path at all, found from its first two segments (`/v1/ping` -> `v1`,
`ping`), in their order: every route it skips has a template that cannot match that path, so
the route chosen, and what FastAPI does with it, is what the full loop would choose and do.
A path that no candidate matches (404, 405 elsewhere, a trailing-slash redirect, low-priority
routes) goes to the router's own loop, unchanged.

The index holds the app's own templates only (bounded by the routes, never by requests), and is
built again when any router's routes change. FastAPI's routes version says so too, but it is a
walk over every included router (`_get_routes_version`), and asking it on every request cost
about 0.06 ms; FastAPI changes its versions only in `APIRouter._mark_routes_changed`, so that
method also counts every change here (`_changes`), and a request compares one number.
Starlette's `mount()` and `host()` change a router's routes without that method: they are
made to call it too. tests/api/test_dispatch.py adds routes and mounts after the first request
and checks they are found.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from fastapi import FastAPI
from fastapi.routing import (
    APIRouter,
    _apply_router_form_limits,
    _FrontendRouteGroup,
    _IncludedRouter,
    _update_scope,
)
from fastapi.telemetry._api import _route_selected
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

ANY = "*"  # a segment a template leaves open ({param}), or "any path at all"
# How many times any APIRouter's routes have changed in this process: FastAPI's routes versions
# move only in `_mark_routes_changed`, which counts here too (once, at import).
_changes = [0]
_mark_routes_changed = APIRouter._mark_routes_changed


def _counted_mark_routes_changed(self: APIRouter) -> None:
    _mark_routes_changed(self)
    _changes[0] += 1


APIRouter._mark_routes_changed = _counted_mark_routes_changed  # type: ignore[method-assign]
# Starlette's `mount` and `host` (an app's `mount()` calls its router's) append their route
# without telling FastAPI: a mount made after the first request was in no table built before
# it. They tell it here, so FastAPI's routes versions (and `_changes`) move for them too.
_starlette_mount, _starlette_host = APIRouter.mount, APIRouter.host


def _counted_mount(self: Router, path: str, app: ASGIApp, name: str | None = None) -> None:
    _starlette_mount(self, path, app, name=name)
    if isinstance(self, APIRouter):
        self._mark_routes_changed()


def _counted_host(self: Router, host: str, app: ASGIApp, name: str | None = None) -> None:
    _starlette_host(self, host, app, name=name)
    if isinstance(self, APIRouter):
        self._mark_routes_changed()


APIRouter.mount = _counted_mount  # type: ignore[method-assign]
APIRouter.host = _counted_host  # type: ignore[method-assign]
T = TypeVar("T")


class FromRoutes(Generic[T]):
    """A table built from the app's routes (this index, the guard's and the idempotency
    middleware's tables): built at the first request and again whenever any router's routes
    have changed since, so a route added later is in it (one comparison a request)."""

    def __init__(self) -> None:
        self._value: T | None = None
        self._changes = -1

    def get(self, build: Callable[[], T]) -> T:
        changes = _changes[0]
        if self._value is None or changes != self._changes:
            self._value, self._changes = build(), changes
        return self._value


Key = tuple[str, str | None] | str  # (first, second or None), (first, ANY), or ANY


def template_keys(path: str, *, prefix: bool = False) -> set[Key]:
    """The keys of the paths a template can match: a route's path (the whole path), or with
    `prefix` a mount's (the path and anything under it)."""
    if not path.startswith("/") or (prefix and path.rstrip("/") == ""):
        return {ANY}
    segments = path.split("/")[1:3]
    first = segments[0]
    if "{" in first:
        return {ANY}
    if len(segments) == 1:
        return {(first, ANY)} if prefix else {(first, None)}
    second = segments[1]
    return {(first, ANY)} if "{" in second else {(first, second)}


def route_keys(route: BaseRoute) -> set[Key]:
    """Every key of the paths a top-level route can match (ANY when it cannot be told)."""
    if isinstance(route, _IncludedRouter):
        keys: set[Key] = set()
        for context in route.effective_route_contexts():
            original = context.original_route
            if isinstance(original, _FrontendRouteGroup):
                return {ANY}
            effective = context.starlette_route or context
            path = getattr(effective, "path", None)
            if path is None:
                return {ANY}
            keys |= template_keys(path, prefix=isinstance(effective, Mount))
        return keys
    if isinstance(route, Mount):
        return template_keys(route.path, prefix=True)
    if isinstance(route, Route):  # FastAPI's APIRoute too
        return template_keys(route.path)
    return {ANY}  # a Host, a websocket route, anything else: tried for every path


def path_key(route_path: str) -> tuple[str, str | None] | None:
    if not route_path.startswith("/"):
        return None
    segments = route_path.split("/", 3)[1:3]
    return (segments[0], segments[1] if len(segments) > 1 else None)


class _Index:
    def __init__(self, routes: list[BaseRoute]) -> None:
        keyed = [(route, route_keys(route)) for route in routes]
        pairs = {key for _, keys in keyed for key in keys if isinstance(key, tuple)}
        firsts = {first for first, _ in pairs}
        self.anywhere = [route for route, keys in keyed if ANY in keys]
        self.by_first = {
            first: [r for r, keys in keyed if ANY in keys or (first, ANY) in keys]
            for first in firsts
        }
        self.by_pair = {
            pair: [r for r, keys in keyed if ANY in keys or (pair[0], ANY) in keys or pair in keys]
            for pair in pairs
            if pair[1] != ANY
        }

    def candidates(self, route_path: str) -> list[BaseRoute]:
        key = path_key(route_path)
        if key is None:
            return self.anywhere
        found = self.by_pair.get(key)
        if found is None:
            found = self.by_first.get(key[0], self.anywhere)
        return found


class PrefixDispatch:
    """The app router's loop over its routes, over the candidates for the path only."""

    def __init__(self, router: APIRouter) -> None:
        self.router = router
        self._index: FromRoutes[_Index] = FromRoutes()

    def candidates(self, route_path: str) -> list[BaseRoute]:
        return self._index.get(lambda: _Index(list(self.router.routes))).candidates(route_path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        router = self.router
        if scope["type"] == "http":
            # As APIRouter.app does before its loop, then its loop over fewer routes.
            _apply_router_form_limits(scope, router.form_limits)
            if "router" not in scope:
                scope["router"] = router
            partial: tuple[BaseRoute, Scope] | None = None
            for route in self.candidates(get_route_path(scope)):
                match, child_scope = route.matches(scope)
                if match == Match.FULL:
                    await _handle(route, child_scope, scope, receive, send)
                    return
                if match == Match.PARTIAL and partial is None:
                    partial = (route, child_scope)
            if partial is not None:
                await _handle(*partial, scope, receive, send)
                return
        await router.app(scope, receive, send)  # nothing matched: the router's own way


async def _handle(
    route: BaseRoute, child_scope: Scope, scope: Scope, receive: Receive, send: Send
) -> None:
    _update_scope(scope, child_scope)
    _route_selected(
        scope=scope, path=getattr(route, "path_format", None), mount=isinstance(route, Mount)
    )
    await route.handle(scope, receive, send)


def install(app: FastAPI) -> None:
    """Put the dispatch where the app's router calls its loop. The router must have no
    middleware of its own (it has none; checked)."""
    router = app.router
    assert router.middleware_stack == router.app, "the app's router has its own middleware"
    router.middleware_stack = PrefixDispatch(router)
