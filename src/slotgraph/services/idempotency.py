"""Idempotency keys: the first answer to a request is kept 24 h and replayed to its retries.

The request runs inside one outer transaction on one connection (api/idempotency.py): `begin`
looks the key up there (on PostgreSQL after taking a transaction-level advisory lock on it, so a
second request with the key while the first runs is told so at once), the request's own service
transactions join it, and `finish` stores the answer in it before the single commit. A change is
therefore committed exactly when its answer is stored, on any number of processes and machines.
If two requests with one key ever both run (the first committed between the second's lookup and
its lock), the second's insert finds the row, and the second rolls its whole transaction back and
replays the first answer instead.

A route that gives its answer before it writes (the create, ADR 0005) needs no outer
transaction and no lookup of its own: its service is handed a `Keyed`, looks the key up in the
read it makes anyway (`Keyed.probe`: the same rule as `begin`, advisory lock included), and
stores the answer in its own write (`Keyed.answer_row`, under `replace_expired`, the rule of
`finish`), which writes nothing if the key was taken meanwhile. Either way it raises `KeyTaken`
and the middleware answers as `begin` says. An error answer is stored by the middleware.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    not_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from slotgraph.addresses import visitor
from slotgraph.db.models import IdempotencyKey, table_of
from slotgraph.db.queries import NewRow, Probe
from slotgraph.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from slotgraph.services.common import Principal

KEEP = timedelta(hours=24)
MAX_KEY_LENGTH = 255
# Only these headers of an answer are kept and replayed; the rest belong to the moment.
KEPT_HEADERS = ("content-type", "location", "etag")
IN_FLIGHT = (
    "A request with this Idempotency-Key is still being processed; retry after it has finished "
    "to get its answer."
)
_TABLE = table_of(IdempotencyKey)
# In `session.info` of the session a keyed request's service runs with: its `Keyed`.
KEYED = "keyed_request"


@dataclass(frozen=True)
class Claim:
    """One app's key, and the fingerprint of the request that comes with it."""

    app_id: uuid.UUID
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Stored:
    status_code: int
    headers: dict[str, str]
    body: str


@dataclass
class Keyed:
    """What the service of a route that answers in its own write sees of its keyed request
    (api/idempotency.py). It looks for the key in its read (`probe`) and stores its answer in
    its write (`answer_row`); `answered` is that answer once committed with the change. If the
    key is taken (answered, or held by a running request), it writes nothing and raises
    `KeyTaken`."""

    claim: Claim
    answered: Stored | None = None

    def probe(self, *, postgresql: bool, now: datetime) -> Probe:
        """A column for the service's read: true if the key is answered or, on PostgreSQL, held
        by a running transaction. In a transaction, the read then holds the key until the end."""
        return _TAKEN[postgresql], _lookup_params(self.claim, now)

    def answer_row(self, answer: Stored, *, now: datetime) -> NewRow:
        return _TABLE, _answer_values(self.claim, answer, now)


class KeyTaken(Exception):
    """A keyed create found its key taken, in its read or its write, and wrote nothing: the
    middleware looks the key up and answers as it would have before running the request."""


def keyed(session: AsyncSession) -> Keyed | None:
    """The keyed request `session` serves, if any."""
    found: Keyed | None = session.info.get(KEYED)
    return found


def caller(principal: Principal, client_ip: str) -> str:
    """Who a keyed request's answer belongs to, as part of its fingerprint (docs/security.md).

    An answer is what its first caller was shown: for the secret key the client's id and the
    customer token, for a visitor with the public key their booking's token. So the same key and
    body from another caller are another request (422 `idempotency_key_reused`), never a replay:
    the public key never reads the secret key's answer, a customer token never the secret key's
    view of its booking, and one visitor (the public key from another `visitor`: an IPv4 address
    or an IPv6 /64, as the rate limits count them) never another's token. The secret key's
    callers are its own servers: "" keeps its fingerprints as they were."""
    if principal.kind == "secret":
        return ""
    if principal.kind == "customer":
        return f"customer {principal.booking_id}"
    return f"public {principal.key_id} {visitor(client_ip)}"


def stored_key(principal: Principal, key: str) -> str:
    """Where a caller's `Idempotency-Key` is kept: the secret key's as sent; the public key's
    and a customer token's apart from it, as a digest under their own name (a line break,
    which no header can hold, so no key sent with the secret key spells one).

    An app's keys were one namespace for every caller, and the public key is in every page:
    any visitor could send a key the app's server would use (`order-1234`) first, with a body
    that fails cheaply, and the server's own request with it was then `422` for 24 hours; and
    the 422 (rather than the visitor's own answer) told the visitor which keys the server had
    used. Visitors share one space among themselves, so a visitor's retry from a new address
    is still a 422, never a second booking; a customer token's keys are its booking's."""
    if principal.kind == "secret":
        return key
    space = f"customer {principal.booking_id}" if principal.kind == "customer" else "public"
    return f"{space}\n{hashlib.sha256(key.encode()).hexdigest()}"


def fingerprint(method: str, path: str, query: str, body: bytes, caller: str = "") -> str:
    """What makes two requests "the same": who sent it (`caller`), method, path, query string
    and body bytes. (A caller is never a method, so the parts cannot run into each other.)"""
    h = hashlib.sha256()
    if caller:
        h.update(caller.encode() + b"\n")
    for part in (method.encode(), path.encode(), query.encode()):
        h.update(part + b"\n")
    h.update(body)
    return h.hexdigest()


def _lock_keys(app_id: uuid.UUID, key: str) -> tuple[int, int]:
    """Two signed 32-bit ints: the two-key advisory lock space, apart from any one-key locks."""
    digest = hashlib.blake2b(app_id.bytes + key.encode(), digest_size=8).digest()
    return (
        int.from_bytes(digest[:4], "big", signed=True),
        int.from_bytes(digest[4:], "big", signed=True),
    )


def _check(stored: Row[Any], fingerprint_: str) -> Stored | None:
    if stored.key is None:
        return None
    if stored.fingerprint != fingerprint_:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request (method, path or body, or "
            "another caller) in the last 24 hours; use a new key for a new request."
        )
    return Stored(stored.status_code, dict(stored.headers), stored.body)


def _live() -> ColumnElement[bool]:
    """The key's answer, if stored less than 24 hours ago (bound per request: `_lookup_params`)."""
    return and_(
        _TABLE.c.app_id == bindparam("p_app_id", type_=_TABLE.c.app_id.type),
        _TABLE.c.key == bindparam("p_key", type_=_TABLE.c.key.type),
        _TABLE.c.expires_at > bindparam("p_now", type_=_TABLE.c.expires_at.type),
    )


def _held() -> ColumnElement[bool]:
    """Take the key's advisory lock (PostgreSQL): false while another transaction holds it."""
    return func.pg_try_advisory_xact_lock(
        bindparam("p_k1", type_=Integer), bindparam("p_k2", type_=Integer)
    )


def _lookup_statement(*, lock: bool) -> Select[Any]:
    """The live answer stored for the key, if any. With `lock` (PostgreSQL), the same statement
    takes the key's advisory lock, but only when no answer is stored: replays never wait for
    each other, and `got` says whether a running request holds the key. Built once; the values
    are bound per request (`_lookup_params`)."""
    one = select(literal(1).label("one")).subquery("one")
    got: ColumnElement[Any] = true()
    if lock:
        got = case((_TABLE.c.key.is_(None), _held()), else_=true())
    return select(*_TABLE.c, got.label("got")).select_from(one.outerjoin(_TABLE, _live()))


def _taken_column(*, lock: bool) -> ColumnElement[bool]:
    """`begin`'s rule as one column for another statement: answered, or (`lock`) held."""
    answered = exists().where(_live())
    if not lock:
        return answered
    return case((answered, true()), else_=not_(_held()))


_TAKEN = {True: _taken_column(lock=True), False: _taken_column(lock=False)}
_LOOKUP = {True: _lookup_statement(lock=True), False: _lookup_statement(lock=False)}


def _lookup_params(claim: Claim, now: datetime) -> dict[str, Any]:
    k1, k2 = _lock_keys(claim.app_id, claim.key)
    return {"p_app_id": claim.app_id, "p_key": claim.key, "p_now": now, "p_k1": k1, "p_k2": k2}


def replace_expired(stmt: Any) -> Any:
    """The one rule for storing an answer: insert it, or replace an expired one; a live one
    stays, and the statement returns no row. `stmt` is a PostgreSQL or SQLite INSERT into
    idempotency_keys (of values, or from a select: queries.insert_rows' claim)."""
    return stmt.on_conflict_do_update(
        index_elements=[_TABLE.c.app_id, _TABLE.c.key],
        set_={c.name: stmt.excluded[c.name] for c in _TABLE.c if not c.primary_key},
        where=_TABLE.c.expires_at <= stmt.excluded.created_at,  # only an expired answer
    ).returning(_TABLE.c.key)


def _store_statement(dialect: str) -> Any:
    """Insert the answer (replace_expired). Built once per dialect."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return replace_expired(
        insert(_TABLE).values({c: bindparam(f"p_{c.name}", type_=c.type) for c in _TABLE.c})
    )


_STORE = {d: _store_statement(d) for d in ("postgresql", "sqlite")}


def _answer_values(claim: Claim, answer: Stored, now: datetime) -> dict[str, Any]:
    return {
        "app_id": claim.app_id,
        "key": claim.key,
        "fingerprint": claim.fingerprint,
        "status_code": answer.status_code,
        "headers": answer.headers,
        "body": answer.body,
        "created_at": now,
        "expires_at": now + KEEP,
    }


async def begin(conn: AsyncConnection, claim: Claim, *, now: datetime) -> Stored | None:
    """In the open outer transaction: the stored answer to replay, or None to run the request.

    Raises IdempotencyKeyInFlight while another transaction holds the key, and
    IdempotencyKeyReused for another request with the same key. (A request that commits between
    this statement's snapshot and its lock is caught by `finish`.)
    """
    lock = conn.dialect.name == "postgresql"
    row = (await conn.execute(_LOOKUP[lock], _lookup_params(claim, now))).one()
    if row.key is None and not row.got:
        raise IdempotencyKeyInFlight(IN_FLIGHT)
    return _check(row, claim.fingerprint)


async def finish(
    conn: AsyncConnection, claim: Claim, *, now: datetime, answer: Stored
) -> Stored | None:
    """Store the answer in the outer transaction. Returns None when stored; else the answer
    stored meanwhile by another request with the key (the caller rolls back and replays it)."""
    values = {f"p_{k}": v for k, v in _answer_values(claim, answer, now).items()}
    if (await conn.execute(_STORE[conn.dialect.name], values)).first() is not None:
        return None
    await conn.rollback()
    async with conn.begin():
        row = (await conn.execute(_LOOKUP[False], _lookup_params(claim, now))).one()
        return _check(row, claim.fingerprint)


@dataclass(frozen=True)
class Answered:
    """A key's stored answer and the fingerprint of the request that stored it."""

    answer: Stored
    fingerprint: str


async def wait_for(conn: AsyncConnection, claim: Claim) -> None:
    """PostgreSQL, in an open transaction: wait until no other transaction holds the key (a
    keyed create's read takes its advisory lock until that create commits or rolls back), then
    hold it until this transaction ends. Bounded by the transaction's lock_timeout (55P03)."""
    k1, k2 = _lock_keys(claim.app_id, claim.key)
    await conn.execute(select(func.pg_advisory_xact_lock(k1, k2)))


async def answered(conn: AsyncConnection, claim: Claim, *, now: datetime) -> Answered | None:
    """The live answer stored for the key, whatever request stored it (the caller compares
    the fingerprints); None if there is none. Takes no lock."""
    row = (await conn.execute(_LOOKUP[False], _lookup_params(claim, now))).one()
    if row.key is None:
        return None
    return Answered(Stored(row.status_code, dict(row.headers), row.body), row.fingerprint)


async def is_answered(session: AsyncSession, claim: Claim, *, now: datetime) -> bool:
    """Whether the key has a live answer, from any request (the caller that replays it compares
    the fingerprints). Takes no lock; in a transaction of its own on `session`."""
    async with session.begin():
        conn = await session.connection()
        return await answered(conn, claim, now=now) is not None


async def prune(session: AsyncSession, *, now: datetime) -> None:
    """Forget answers older than 24 h (the worker's timers call this)."""
    async with session.begin():
        await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
