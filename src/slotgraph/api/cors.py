"""CORS: which web pages may call the public key's routes from a browser (docs/security.md).

Each app lists its `allowed_origins`. A preflight (OPTIONS, sent by browsers without any key)
for a public-key route is answered when some app allows the origin; the real request then carries
`Access-Control-Allow-Origin` only if the key's own app allows it. Secret-key routes never answer
a preflight and never carry the header: a secret key has no business in a browser.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response
from starlette.types import Message, Send

from slotgraph.services import apps

_CACHE_SECONDS = 30.0
MAX_AGE = 600  # seconds a browser may keep a preflight's answer
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "If-None-Match",
    "X-Request-Id",
)
TIMEKIT_HEADERS = ("Timekit-App", "Timekit-Context", "Timekit-Timezone")  # the /v2 widget's
EXPOSED_HEADERS = (
    "Location",
    "ETag",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "X-Request-Id",
    "Idempotent-Replayed",
)


def normalised(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


async def allowed_anywhere(app: Any, origin: str) -> bool:
    """Whether any app allows `origin` (a preflight names no key, so no app). Cached 30 s;
    `PUT /v1/app` clears the cache of the process that served it."""
    cached: tuple[float, frozenset[str]] | None = getattr(app.state, "cors_origins", None)
    if cached is None or cached[0] <= time.monotonic():
        async with app.state.sessions() as session:
            origins = await apps.all_allowed_origins(session)
        cached = (time.monotonic() + _CACHE_SECONDS, origins)
        app.state.cors_origins = cached
    return origin in cached[1]


def preflight(origin: str, method: str, timekit: bool) -> Response:
    allowed = (*ALLOWED_HEADERS, *(TIMEKIT_HEADERS if timekit else ()))
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": method,
            "Access-Control-Allow-Headers": ", ".join(allowed),
            "Access-Control-Max-Age": str(MAX_AGE),
            "Vary": "Origin",
        },
    )


def allowing(send: Send, origin: str) -> Send:
    """`send` with the headers that let the page at `origin` read the answer."""
    extra = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", ", ".join(EXPOSED_HEADERS).encode()),
        (b"vary", b"Origin"),
    ]

    async def send_allowed(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return send_allowed
