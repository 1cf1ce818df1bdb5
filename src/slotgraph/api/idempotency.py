"""`Idempotency-Key` on POST, PUT, PATCH and DELETE under /v1 (the IETF draft; as Stripe does).

For a request with the header, this middleware opens one connection and one transaction, asks
services/idempotency.py whether the key has an answer (replay it), is held by a running request
(409 idempotency_key_in_flight) or was used for another request (422 idempotency_key_reused),
and otherwise runs the request with its database session bound to that transaction (api/deps.py:
the service's transactions join it, without savepoints). The answer is stored in the same
transaction before the one commit, and only then sent. A service that fails rolls the whole
transaction back; its error answer is then stored in a new one. Answers that say "try again"
(5xx, 429, 409 concurrent_update) are not stored, and the transaction is rolled back.

A route marked `answers_in_its_write` (the create, whose answer is known before its write) gets
no connection, transaction or lookup from here: its service looks the key up in its own read
and stores its answer in its own write (services/idempotency.py `Keyed`, ADR 0005), so a keyed
create costs what a plain one does, plus a column and a row. If the key was taken, the service
wrote nothing (`KeyTaken`) and the key is looked up here; an error answer is stored here, in a
transaction of its own, as above.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slotgraph.api.deps import client_ip, get_caller
from slotgraph.api.dispatch import FromRoutes
from slotgraph.api.guard import header, replay_body, route_table
from slotgraph.api.problems import slotgraph_error
from slotgraph.errors import BadRequest, IdempotencyKeyInFlight, SlotgraphError
from slotgraph.services import idempotency
from slotgraph.services.idempotency import KEPT_HEADERS, Claim, Keyed, KeyTaken, Stored

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CONNECTION = "idempotency_connection"  # the keys in the request state that api/deps.py reads
KEYED = "idempotency_keyed"
_RETRY_CODES = (
    b'"code":"concurrent_update"',
    b'"code":"rate_limited"',
    b'"code":"idempotency_key_in_flight"',
)
_IN_ITS_WRITE: set[Callable[..., Any]] = set()
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def answers_in_its_write(endpoint: Endpoint) -> Endpoint:
    """Mark a route whose service stores a keyed request's answer in its own write (and begins
    the keyed transaction itself when it cannot): services/idempotency.py `Keyed`."""
    _IN_ITS_WRITE.add(endpoint)
    return endpoint


def _storable(status: int, body: bytes) -> bool:
    return status < 500 and status != 429 and not any(c in body for c in _RETRY_CODES)


class Idempotency:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._table: FromRoutes[list[tuple[re.Pattern[str], frozenset[str], APIRoute]]]
        self._table = FromRoutes()

    def _routed(self, scope: Scope) -> APIRoute | None:
        """The route that answers this method on this path, if any (the first that matches, as
        the router tries them; the table is built again when a route is added)."""
        table = self._table.get(lambda: route_table(scope["app"]))
        method, path = scope["method"], scope["path"]
        for pattern, methods, route in table:
            if method in methods and pattern.match(path):
                return route
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = header(scope, b"idempotency-key") if scope["type"] == "http" else None
        if key is None or scope["method"] not in WRITES or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        route = self._routed(scope)
        if route is None:  # no such operation: 404 or 405, and no key is used up
            await self.app(scope, receive, send)
            return
        try:
            if not 1 <= len(key) <= idempotency.MAX_KEY_LENGTH or not key.isprintable():
                raise BadRequest(
                    f"Idempotency-Key must be 1 to {idempotency.MAX_KEY_LENGTH} printable "
                    "characters (a UUID is a good choice)."
                )
            in_its_write = route.endpoint in _IN_ITS_WRITE
            await self._keyed(scope, receive, send, key, in_its_write)
        except SlotgraphError as exc:
            await slotgraph_error(exc)(scope, receive, send)

    async def _keyed(
        self, scope: Scope, receive: Receive, send: Send, key: str, in_its_write: bool
    ) -> None:
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
            scope["method"],
            scope["path"],
            scope.get("query_string", b"").decode("latin-1"),
            body,
            caller=idempotency.caller(principal, client_ip(scope)),
        )
        claim = Claim(principal.app_id, idempotency.stored_key(principal, key), fingerprint)
        if in_its_write:
            await self._in_its_write(scope, replay, send, claim, clock)
            return
        async with app.state.engine.connect() as conn:
            await conn.begin()
            stored = await idempotency.begin(conn, claim, now=clock())
            if stored is not None:
                await conn.rollback()
                await _replay(send, stored)
                return
            start, chunks = await self._run(scope, replay, CONNECTION, conn)
            status, raw_headers, body = start["status"], start.get("headers", []), b"".join(chunks)
            if not _storable(status, body):
                await conn.rollback()
                await _send(send, status, raw_headers, body)
                return
            await self._store(conn, claim, clock, send, status, raw_headers, body)

    async def _in_its_write(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        claim: Claim,
        clock: Callable[[], datetime],
    ) -> None:
        """A route whose service looks the key up and stores its answer itself (`Keyed`)."""
        engine = scope["app"].state.engine
        keyed = Keyed(claim)
        try:
            start, chunks = await self._run(scope, receive, KEYED, keyed)
        except KeyTaken:
            async with engine.connect() as conn, conn.begin():
                stored = await idempotency.begin(conn, claim, now=clock())
            if stored is None:  # its holder failed, and is storing its error answer
                raise IdempotencyKeyInFlight(idempotency.IN_FLIGHT) from None
            await _replay(send, stored)
            return
        status, raw_headers, body = start["status"], start.get("headers", []), b"".join(chunks)
        if keyed.answered is not None or not _storable(status, body):
            await _send(send, status, raw_headers, body)
            return
        async with engine.connect() as conn:  # an error answer: stored here
            await self._store(conn, claim, clock, send, status, raw_headers, body)

    async def _store(
        self,
        conn: AsyncConnection,
        claim: Claim,
        clock: Callable[[], datetime],
        send: Send,
        status: int,
        raw_headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> None:
        """Store this answer in the key's transaction, commit and send it; or, if the key has an
        answer already, roll back and replay that. Without a transaction (the service failed and
        rolled the key's back, or the route stores its own answers), the key is taken first in
        a new one."""
        stored = None
        if not conn.in_transaction():
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
        await _replay(send, stored)

    async def _run(
        self, scope: Scope, receive: Receive, name: str, value: object
    ) -> tuple[Message, list[bytes]]:
        """Run the request with `value` in its state under `name` (api/deps.py makes the
        session from it); return the answer, unsent."""
        state = scope.setdefault("state", {})
        state[name] = value
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
            scope["state"].pop(name, None)
        return start, chunks


async def _replay(send: Send, stored: Stored) -> None:
    headers = [(k.encode(), v.encode()) for k, v in stored.headers.items()]
    await _send(
        send,
        stored.status_code,
        [*headers, (b"idempotent-replayed", b"true")],
        stored.body.encode(),
    )


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
