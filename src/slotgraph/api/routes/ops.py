"""For load balancers, orchestrators and Prometheus: /healthz, /readyz, /metrics.

None of these needs an API key; /metrics wants `SLOTGRAPH_METRICS_TOKEN` when it is set.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from slotgraph import metrics
from slotgraph.api.deps import Now, Session
from slotgraph.api.problems import problem
from slotgraph.errors import Unauthenticated
from slotgraph.services import health
from slotgraph.settings import Settings

router = APIRouter(include_in_schema=False)

READY_TIMEOUT_SECONDS = 2.0


@router.api_route("/healthz", methods=["GET", "HEAD"])
async def healthz() -> dict[str, str]:
    """The process is alive and serving. Touches no database: restart only what is broken."""
    return {"status": "ok"}


@router.api_route("/readyz", methods=["GET", "HEAD"])
async def readyz(request: Request, session: Session, now: Now) -> Response:
    """Ready for traffic: database answers, schema at head, a worker looped recently."""
    settings: Settings = request.app.state.settings
    ready = await health.readiness(
        session,
        now=now,
        within_seconds=READY_TIMEOUT_SECONDS,
        worker_max_age=timedelta(seconds=settings.require_worker_heartbeat_seconds),
    )
    if ready.ready:
        return JSONResponse({"status": "ready", "checks": ready.checks})
    failing = ", ".join(name for name, c in ready.checks.items() if not c["ok"])
    return problem(
        503,
        "not_ready",
        f"Not ready: {failing}.",
        headers={"Retry-After": "5"},
        extra={"checks": ready.checks},
    )


@router.get("/metrics")
async def metrics_text(request: Request, session: Session, now: Now) -> Response:
    settings: Settings = request.app.state.settings
    if settings.metrics_token is not None:
        expected = f"Bearer {settings.metrics_token.get_secret_value()}"
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthenticated(
                "/metrics needs `Authorization: Bearer <SLOTGRAPH_METRICS_TOKEN>`."
            )
    lag = await health.outbox_lag(session, now=now)
    body = metrics.exposition(
        {
            "slotgraph_outbox_lag_seconds": (
                "Age of the oldest event not yet delivered to every endpoint (0: none waiting).",
                lag,
            )
        }
    )
    return Response(body, media_type=metrics.CONTENT_TYPE)
