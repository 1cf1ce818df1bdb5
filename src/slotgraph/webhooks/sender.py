"""One HTTP attempt: sign, POST, measure, keep the first 2 KB of the answer.

The client is aiohttp: the worker's profile had httpx/httpcore as its largest cost (its pool
scans every connection's socket for each request), and the same POSTs cost about a tenth of
the CPU time with aiohttp (docs/benchmarks.md, ADR 0003)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from slotgraph.domain.deliveries import Outcome
from slotgraph.webhooks import signing, timekit
from slotgraph.webhooks.ssrf import UrlNotAllowed, check_target, refuse_private

TIMEOUT_SECONDS = 15.0
BODY_KEEP = 2048


class _PublicOnly(AbstractResolver):
    """Resolves as usual and refuses a host with any non-public address: the connection is made
    to the addresses checked here, so a name that resolves differently a second time (DNS
    rebinding) cannot lead a send into a private network. aiohttp asks it for every host name
    it connects to (its DNS cache keeps only what this returned); a host written as an address
    is not resolved, and `send` checks it first (`check_target`)."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        refuse_private(host, {r["host"] for r in results})
        return results

    async def close(self) -> None:
        await self._inner.close()


def session(*, connections: int, allow_private: bool) -> aiohttp.ClientSession:
    """The worker's client: at most `connections` at once, kept alive between sends. Answers
    are kept as they came (no decompression, so none is asked for: a compressed answer's
    first 2 KB would be kept as bytes no one can read); redirects are not followed (`send`).
    No cookies: one client sends every app's webhooks, and a cookie one receiver set would go
    with the next sends to its host, whichever app's they are (and fill the worker's memory)."""
    connector = aiohttp.TCPConnector(
        limit=connections, resolver=None if allow_private else _PublicOnly()
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("Accept-Encoding",),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
    )


async def send(
    http: aiohttp.ClientSession,
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
    try:
        check_target(url, allow_private=allow_private)
    except UrlNotAllowed as exc:
        return Outcome(None, f"refused: {exc}", _since(started), None)
    data = body.encode()
    # The signed timestamp is the real time of sending: receivers check it against their clock.
    headers: dict[str, Any]
    if format_ == timekit.FORMAT:
        headers = timekit.headers(msg_id=msg_id, body=body, secrets_=secrets_)
    else:
        headers = signing.headers(msg_id=msg_id, at=int(time.time()), data=data, secrets_=secrets_)
    if request_id:
        headers["x-request-id"] = request_id
    try:
        async with http.post(url, data=data, headers=headers, allow_redirects=False) as response:
            # Read until 2 KB are kept or the answer ends, with no read past its end (one
            # await a send less; none for an empty answer, whose end is known at its head).
            content, kept = response.content, b""
            while len(kept) < BODY_KEEP and not content.at_eof():
                if not (chunk := await content.read(BODY_KEEP)):
                    break
                kept += chunk
            text = kept[:BODY_KEEP].decode("utf-8", errors="replace")
            return Outcome(response.status, None, _since(started), text)
    except UrlNotAllowed as exc:  # from the resolver: the name resolves elsewhere now
        return Outcome(None, f"refused: {exc}", _since(started), None)
    except TimeoutError:
        return Outcome(None, f"timeout after {TIMEOUT_SECONDS:.0f} s", _since(started), None)
    except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:500], _since(started), None)


def _since(started: float) -> int:
    """Milliseconds since `started` (time.monotonic())."""
    return int((time.monotonic() - started) * 1000)
