"""The FastAPI application factory. No engine exists until the app starts or a test passes one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph import __version__, logs, warm
from slotgraph.api import dispatch, openapi, problems, reference
from slotgraph.api.guard import Guard
from slotgraph.api.idempotency import Idempotency
from slotgraph.api.observe import Observe
from slotgraph.api.ratelimit import Limiter
from slotgraph.api.routes import app as app_routes
from slotgraph.api.routes import (
    availability,
    bookings,
    calendars,
    clients,
    emails,
    meta,
    ops,
    pages,
    resources,
    webhooks,
)
from slotgraph.api.timekit.router import router as timekit_router
from slotgraph.db.engine import create_engine, session_factory
from slotgraph.dbclock import DatabaseClock
from slotgraph.heap import settle_the_heap
from slotgraph.settings import Settings
from slotgraph.syncer import check_encryption_key
from slotgraph.web import routing as web
from slotgraph.worker import Worker


def create_app(
    settings: Settings | None = None,
    *,
    engine: AsyncEngine | None = None,
    clock: Callable[[], datetime] | None = None,
    settle_heap: bool = False,
) -> FastAPI:
    """The app. `clock`: the time every request and the worker in the process read; by default
    the database's (dbclock.py, ADR 0019), measured when the app starts. `settle_heap`: a server
    process's own app (`serve_app`), whose start-up ends by tuning the garbage collector for the
    process (`settle_the_heap`); never a test's."""
    settings = settings or Settings()
    db_clock: DatabaseClock | None = None
    if clock is None:
        clock = db_clock = DatabaseClock(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = engine is None
        eng = engine or create_engine(settings.database_url, settings)
        _attach(app, eng)
        await check_encryption_key(eng, settings)
        worker = task = keeper = None
        if db_clock is not None:  # before the first request reads it
            db_clock.engine = eng
            await db_clock.measure()
        if settings.run_worker:
            # The requests' clock: on the database's time (ADR 0019), the worker measures it
            # again with each round of its timers, as `slotgraph worker` does.
            worker = Worker(eng, settings, clock=clock)
            task = asyncio.create_task(worker.run(), name="slotgraph-worker")
        elif db_clock is not None:
            keeper = asyncio.create_task(db_clock.keep(), name="slotgraph-clock")
        if settle_heap:
            settle_the_heap()
        # What this process will use soon, imported in a thread once it serves (warm.py); a
        # server process's own app only: a test's would load them into the test's process.
        warming = (
            asyncio.create_task(
                warm.warm_up(app.state.sessions, serves=True, works=settings.run_worker),
                name="slotgraph-warm",
            )
            if settle_heap
            else None
        )
        app.state.warming = warming
        try:
            yield
        finally:
            if warming is not None:
                warming.cancel()
            if keeper is not None:
                keeper.cancel()
            if worker is not None and task is not None:
                await worker.stop(task)
            await app.state.limiter.close()
            if own:
                await eng.dispose()

    app = FastAPIOffline(  # its assets (no CDN); its pages are ours (api/reference.py)
        docs_url=None,
        redoc_url=None,
        title="slotgraph",
        version=__version__,
        description="Resources, free time slots, and bookings that follow graphs of states.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.key_cache = {}
    if engine is not None:
        _attach(app, engine)
    app.add_middleware(Idempotency)
    app.state.limiter = Limiter.create(
        redis_url=settings.redis_url,
        redis_timeout=settings.redis_timeout_seconds,
        memory_keys=settings.rate_limit_memory_keys,
        bad_key_limit=settings.bad_key_limit,
        address_limit=settings.address_rate_limit,
        max_per_minute=settings.max_app_rate_limit,
    )
    app.add_middleware(
        Guard,  # the key before the body; CORS, rate limits, the body bounded (security.md)
        root=app,
        limiter=app.state.limiter,
        max_body_bytes=settings.max_body_bytes,
        max_json_depth=settings.max_json_depth,
        body_timeout_seconds=settings.body_timeout_seconds,
    )
    app.add_middleware(Observe)  # outermost: sees every answer, even an unhandled error
    problems.install(app)
    for module in (
        resources,
        availability,
        clients,
        bookings,
        webhooks,
        emails,
        calendars,
        pages,
        app_routes,
        meta,
        ops,
    ):
        add_routes(app, module.router)
    add_routes(app, timekit_router)
    add_routes(app, reference.router)  # /docs, /redoc
    web.install(app)  # /static
    for router in web.routers():  # booking pages and manage links (HTML)
        add_routes(app, router)
    openapi.install(app)
    dispatch.install(app)  # routes tried by the path's first two segments (ADR 0011)
    return app


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """`app.include_router(router)` for a module's router, included as it is (no prefix, tags or
    dependencies added): its routes themselves, built once at import. FastAPI's include builds
    every route's dependencies and fields again for each app, lazily at its first request: 0.12 s
    of CPU a process start and a test's app (docs/testing.md)."""
    assert not router.on_startup, "a router with events: include_router it"
    assert not router.on_shutdown, "a router with events: include_router it"
    app.router.routes.extend(router.routes)
    # FastAPI's own include and add_api_route end so, and only it tells FastAPI's caches and
    # the dispatch's index (api/dispatch.py) that the routes changed; no public method does it
    # without building routes again. tests/api/test_dispatch.py fails if it stops counting.
    app.router._mark_routes_changed()


def serve_app() -> FastAPI:
    """The factory `slotgraph serve` gives uvicorn: each server process sets up its logging."""
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    return create_app(settings, settle_heap=True)


def _attach(app: FastAPI, engine: AsyncEngine) -> None:
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
