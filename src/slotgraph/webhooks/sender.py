"""One HTTP attempt: sign, POST, measure, keep the first 2 KB of the answer."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx

from slotgraph.domain.deliveries import Outcome
from slotgraph.webhooks import signing, timekit
from slotgraph.webhooks.ssrf import UrlNotAllowed, check_url

TIMEOUT_SECONDS = 15.0
BODY_KEEP = 2048


async def send(
    http: httpx.AsyncClient,
    *,
    url: str,
    msg_id: str,
    body: str,
    secrets_: list[str],
    allow_private: bool,
    format_: str = "standard",
    request_id: str | None = None,
) -> Outcome:
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        await check_url(url, allow_private=allow_private)
    except UrlNotAllowed as exc:
        return Outcome(None, f"refused: {exc}", took(), None)
    # The signed timestamp is the real time of sending: receivers check it against their clock.
    if format_ == timekit.FORMAT:
        headers = timekit.headers(msg_id=msg_id, body=body, secrets_=secrets_)
    else:
        headers = signing.headers(
            msg_id=msg_id, timestamp=datetime.now(UTC), body=body, secrets_=secrets_
        )
    if request_id:
        headers["x-request-id"] = request_id
    try:
        async with http.stream(
            "POST", url, content=body.encode(), headers=headers, timeout=TIMEOUT_SECONDS
        ) as response:
            kept = b""
            async for chunk in response.aiter_raw():
                kept += chunk
                if len(kept) >= BODY_KEEP:
                    break
            text = kept[:BODY_KEEP].decode("utf-8", errors="replace")
            return Outcome(response.status_code, None, took(), text)
    except httpx.TimeoutException:
        return Outcome(None, f"timeout after {TIMEOUT_SECONDS:.0f} s", took(), None)
    except httpx.HTTPError as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:500], took(), None)
