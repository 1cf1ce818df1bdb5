"""Each request: a request id, one access log line, its latency in the metrics and in a
`Server-Timing: app;dur=<ms>` header (time in the app, without the network), and any error that
escaped the exception handlers answered as problem+json and logged exactly once.

The request id comes from `X-Request-Id` (if it is a sane token) or is made here; it is returned in
the response and set in `logs.request_id`, from where log lines and the outbox events the request
writes pick it up.
"""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slotgraph import logs, metrics
from slotgraph.api import problems

access = logging.getLogger("slotgraph.access")

_SANE_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
# A token in a path is a password: never logged. Booking tokens (/manage/ct_..., the owner's
# ot_ links) and a calendar feed's (/ical/{token}.ics, which shows a resource's bookings).
_SECRET_IN_PATH = re.compile(r"/(ct_|ot_|ical/)[^/]*")


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            given: str = value.decode("latin-1").strip()
            if _SANE_ID.match(given):
                return given
    return logs.new_request_id()


# What the access line and the request metric say of a request answered nothing because its
# client closed the connection first (nginx's 499): not the server's error, which 5xx alerts count.
CLIENT_CLOSED = 499


class Observe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                ms = (time.perf_counter() - started) * 1000
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", rid.encode()),
                    (b"server-timing", f"app;dur={ms:.2f}".encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Logged once, here (with the traceback), and never re-raised to the server.
            response = problems.unexpected(exc, scope["path"])
            if not response_started:
                await response(scope, receive, send_with_id)
        else:
            if not response_started:  # the client left before its request was whole (guard.py)
                status = CLIENT_CLOSED
        finally:
            duration = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            path = _SECRET_IN_PATH.sub(r"/\1[redacted]", scope["path"])
            metrics.get().http_duration.labels(method, template, str(status)).observe(duration)
            access.info(
                "%s %s %s %.1fms",
                method,
                path,
                status,
                duration * 1000,
                extra={
                    "fields": {
                        "method": method,
                        "path": path,
                        "route": template,
                        "status": status,
                        "duration_ms": round(duration * 1000, 2),
                    }
                },
            )
            logs.request_id.reset(token)
