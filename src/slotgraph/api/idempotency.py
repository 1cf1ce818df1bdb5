"""`Idempotency-Key` on POST, PUT, PATCH and DELETE under /v1 (the IETF draft; as Stripe does).

For a request with the header, this middleware opens one connection and one transaction, asks
services/idempotency.py whether the key has an answer (replay it), is held by a running request
(409 idempotency_key_in_flight) or was used for another request (422 idempotency_key_reused),
and otherwise runs the request with its database session bound to that transaction (api/deps.py:
the service's transactions join it, without savepoints). The answer is stored in the same
transaction before the one commit, and only then sent. A service that fails rolls the whole
transaction back; its error answer is then stored in a new one. Answers that say "try again"
(5xx, 429, 409 concurrent_update) are not stored, and the transaction is rolled back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from fastapi import routing
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slotgraph.api.deps import get_caller
from slotgraph.api.guard import header, replay_body
from slotgraph.api.problems import slotgraph_error
from slotgraph.errors import BadRequest, IdempotencyKeyInFlight, SlotgraphError
from slotgraph.services import idempotency
from slotgraph.services.idempotency import KEPT_HEADERS, Claim, Stored

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CONNECTION = "idempotency_connection"  # the keys in the request state that api/deps.py reads
REJOIN = "idempotency_rejoin"
Rejoin = Callable[[], Awaitable[None]]
_RETRY_CODES = (b'"code":"concurrent_update"', b'"code":"rate_limited"')


def _routed(scope: Scope) -> bool:
    """Whether a route answers this method on this path."""
    return any(
        route.matches(scope)[0] is Match.FULL
        for route in routing.iter_route_contexts(scope["app"].routes)
    )


def _storable(status: int, body: bytes) -> bool:
    return status < 500 and status != 429 and not any(c in body for c in _RETRY_CODES)


class Idempotency:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = header(scope, b"idempotency-key") if scope["type"] == "http" else None
        if (
            key is None
            or scope["method"] not in WRITES
            or not scope["path"].startswith("/v1/")
            or not _routed(scope)  # no such operation: 404 or 405, and no key is used up
        ):
            await self.app(scope, receive, send)
            return
        try:
            if not 1 <= len(key) <= idempotency.MAX_KEY_LENGTH or not key.isprintable():
                raise BadRequest(
                    f"Idempotency-Key must be 1 to {idempotency.MAX_KEY_LENGTH} printable "
                    "characters (a UUID is a good choice)."
                )
            await self._keyed(scope, receive, send, key)
        except SlotgraphError as exc:
            await slotgraph_error(exc)(scope, receive, send)

    async def _keyed(self, scope: Scope, receive: Receive, send: Send, key: str) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        request = Request(scope)
        app = scope["app"]
        authorization = header(scope, b"authorization")
        replay = replay_body(body, receive)
        if not authorization:  # the route answers 401 itself
            await self.app(scope, replay, send)
            return
        principal = await get_caller(request, authorization)
        clock: Callable[[], datetime] = app.state.clock
        fingerprint = idempotency.fingerprint(
            scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1"), body
        )
        claim = Claim(principal.app_id, key, fingerprint)
        async with app.state.engine.connect() as conn:
            await conn.begin()
            stored = await idempotency.begin(conn, claim, now=clock())
            if stored is None:

                async def rejoin() -> None:
                    # A refusal by the database rolled the transaction back and the service
                    # retries: begin it again, and take the key again, before it does.
                    await conn.begin()
                    if await idempotency.begin(conn, claim, now=clock()) is not None:
                        raise IdempotencyKeyInFlight("Another request with this key finished.")

                start, chunks = await self._run(scope, replay, conn, rejoin)
                status, raw_headers, body = (
                    start["status"],
                    start.get("headers", []),
                    b"".join(chunks),
                )
                if not _storable(status, body):
                    await conn.rollback()
                    await _send(send, status, raw_headers, body)
                    return
                if not conn.in_transaction():
                    # The service failed and rolled the transaction back (and the key's lock
                    # with it): its error answer is stored in a new one, if the key is still free.
                    await conn.begin()
                    stored = await idempotency.begin(conn, claim, now=clock())
                if stored is None:
                    answer = Stored(
                        status_code=status,
                        headers={
                            k.decode(): v.decode()
                            for k, v in raw_headers
                            if k.decode().lower() in KEPT_HEADERS
                        },
                        body=body.decode(),
                    )
                    stored = await idempotency.finish(conn, claim, now=clock(), answer=answer)
                if stored is None:
                    await conn.commit()
                    await _send(send, status, raw_headers, body)
                    return
            await conn.rollback()
        headers = [(k.encode(), v.encode()) for k, v in stored.headers.items()]
        await _send(
            send,
            stored.status_code,
            [*headers, (b"idempotent-replayed", b"true")],
            stored.body.encode(),
        )

    async def _run(
        self, scope: Scope, receive: Receive, conn: AsyncConnection, rejoin: Rejoin
    ) -> tuple[Message, list[bytes]]:
        """Run the request with its session on `conn`; return the answer, unsent."""
        state = scope.setdefault("state", {})
        state[CONNECTION] = conn
        state[REJOIN] = rejoin
        start: Message = {}
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, receive, keep)
        finally:
            scope["state"].pop(CONNECTION, None)
            scope["state"].pop(REJOIN, None)
        return start, chunks


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
