"""A new app takes its modules' routes as their routers built them at import (api/app.py
`add_routes`), not rebuilt per app: FastAPI's `include_router` built every route's dependencies
and fields again at each app's first request (0.12 s of CPU a server process and a test's app,
docs/testing.md); the document and the routing are the same either way (test_openapi.py,
test_every_route.py, test_dispatch.py)."""

from __future__ import annotations

from slotgraph.api.app import create_app
from slotgraph.api.routes import bookings, meta, resources
from slotgraph.api.timekit.router import router as timekit_router
from slotgraph.settings import Settings
from slotgraph.web import book, manage, owner


def test_every_new_app_serves_the_routes_its_modules_built_at_import() -> None:
    for app in (create_app(Settings(run_worker=False)) for _ in range(2)):
        served = {id(route) for route in app.router.routes}
        modules = (resources.router, bookings.router, meta.router, timekit_router)
        for router in (*modules, book.router, manage.router, owner.router):
            assert {id(route) for route in router.routes} <= served
