"""Idempotency keys: the first answer to a request is kept 24 h and replayed to its retries.

The request runs inside one outer transaction on one connection (api/idempotency.py): `begin`
looks the key up there (on PostgreSQL after taking a transaction-level advisory lock on it, so a
second request with the key while the first runs is told so at once), the request's own service
transactions become savepoints in it, and `finish` stores the answer in it before the single
commit. A change is therefore committed exactly when its answer is stored, on any number of
processes and machines. If two requests with one key ever both run (the first committed between
the second's lookup and its lock), the second's insert finds the row, and the second rolls its
whole transaction back and replays the first answer instead.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, case, delete, func, literal, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from slotgraph.db.models import IdempotencyKey, table_of
from slotgraph.errors import IdempotencyKeyInFlight, IdempotencyKeyReused

KEEP = timedelta(hours=24)
MAX_KEY_LENGTH = 255
# Only these headers of an answer are kept and replayed; the rest belong to the moment.
KEPT_HEADERS = ("content-type", "location", "etag")
_TABLE = table_of(IdempotencyKey)


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


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """What makes two requests "the same": method, path, query string and body bytes."""
    h = hashlib.sha256()
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
            "This Idempotency-Key was used for a different request (method, path or body) in "
            "the last 24 hours; use a new key for a new request."
        )
    return Stored(stored.status_code, dict(stored.headers), stored.body)


def _lookup_statement(claim: Claim, now: datetime, *, lock: bool) -> Select[Any]:
    """The live answer stored for the key, if any. With `lock` (PostgreSQL), the same statement
    takes the key's advisory lock, but only when no answer is stored: replays never wait for
    each other, and `got` says whether a running request holds the key."""
    one = select(literal(1).label("one")).subquery("one")
    found = and_(
        _TABLE.c.app_id == claim.app_id, _TABLE.c.key == claim.key, _TABLE.c.expires_at > now
    )
    got: ColumnElement[Any] = true()
    if lock:
        k1, k2 = _lock_keys(claim.app_id, claim.key)
        got = case((_TABLE.c.key.is_(None), func.pg_try_advisory_xact_lock(k1, k2)), else_=true())
    return select(*_TABLE.c, got.label("got")).select_from(one.outerjoin(_TABLE, found))


async def begin(conn: AsyncConnection, claim: Claim, *, now: datetime) -> Stored | None:
    """In the open outer transaction: the stored answer to replay, or None to run the request.

    Raises IdempotencyKeyInFlight while another transaction holds the key, and
    IdempotencyKeyReused for another request with the same key. (A request that commits between
    this statement's snapshot and its lock is caught by `finish`.)
    """
    lock = conn.dialect.name == "postgresql"
    row = (await conn.execute(_lookup_statement(claim, now, lock=lock))).one()
    if row.key is None and not row.got:
        raise IdempotencyKeyInFlight(
            "A request with this Idempotency-Key is still being processed; retry after it "
            "has finished to get its answer."
        )
    return _check(row, claim.fingerprint)


async def finish(
    conn: AsyncConnection, claim: Claim, *, now: datetime, answer: Stored
) -> Stored | None:
    """Store the answer in the outer transaction. Returns None when stored; else the answer
    stored meanwhile by another request with the key (the caller rolls back and replays it)."""
    values = {
        "app_id": claim.app_id,
        "key": claim.key,
        "fingerprint": claim.fingerprint,
        "status_code": answer.status_code,
        "headers": answer.headers,
        "body": answer.body,
        "created_at": now,
        "expires_at": now + KEEP,
    }
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(_TABLE).values(values)
    upsert = stmt.on_conflict_do_update(
        index_elements=[_TABLE.c.app_id, _TABLE.c.key],
        set_={k: stmt.excluded[k] for k in values if k not in ("app_id", "key")},
        where=_TABLE.c.expires_at <= now,  # only an expired answer may be replaced
    ).returning(_TABLE.c.key)
    if (await conn.execute(upsert)).first() is not None:
        return None
    await conn.rollback()
    async with conn.begin():
        row = (await conn.execute(_lookup_statement(claim, now, lock=False))).one()
        return _check(row, claim.fingerprint)


async def prune(session: AsyncSession, *, now: datetime) -> None:
    """Forget answers older than 24 h (the worker's timers call this)."""
    async with session.begin():
        await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
