"""The worker's delivery pipeline: claim, send, record the attempt, back off, retry.

Each step is its own short transaction; the send happens outside any:
  dispatch  - (services/fanout.py) claim undispatched events, create one delivery per target
              that wants them; first attempts born leased to the worker that sends them
  claim     - take due deliveries with a lease (SKIP LOCKED on PostgreSQL), count the attempt;
              on PostgreSQL one statement on the driver (services/delivery_statements.py)
  (send)    - by the channel, outside any transaction (webhooks/sender.py)
  finish    - record a batch's attempts in one transaction; succeed, schedule the retry
              (domain/deliveries.py), or give up; on PostgreSQL one statement
  release   - give back claims that were never sent (graceful stop)

The lease, the attempt count, the ordering per booking, the retry schedule and the attempt log
are the same for every channel. What belongs to the webhook channel is kept to the functions
under "the webhook channel" below (which targets want an event is services/fanout.py's
`_TARGETS` and the channels' `wanted` filters): what a failed
attempt does to its target's health (`_after_failure`; a success ends a failing streak in the
record's own statement). A second channel (emails, calendar pushes) supplies those and its own
render and send; it does not copy the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from slotgraph.db.engine import driver_fetch
from slotgraph.db.models import Delivery, WebhookEndpoint, new_id
from slotgraph.db.models.base import table_of
from slotgraph.domain.deliveries import Outcome, next_retry_at
from slotgraph.domain.webhooks import should_disable, signing_secrets
from slotgraph.notifications import channel as emails
from slotgraph.services import delivery_statements as sql
from slotgraph.services import sqlite_deliveries
from slotgraph.services.outbox import record_event
from slotgraph.services.views import webhook_out
from slotgraph.webhook_schemas import DeliveryOut
from slotgraph.webhooks import timekit


class Claim(NamedTuple):
    """One leased attempt: what to send (`payload`, the event's bytes) and where (`url`,
    signed with `secrets`). A named tuple, built for every delivery: 2 us against 4.6 for the
    frozen dataclass it was (ten fields, each set through object.__setattr__)."""

    delivery_id: uuid.UUID
    attempt: int
    event_id: uuid.UUID
    endpoint_id: uuid.UUID
    payload: str
    url: str
    secrets: list[str]
    format: str = "standard"  # the endpoint's format: "standard" or "timekit"
    request_id: str | None = None  # of the request that caused the event: X-Request-Id
    calendar_id: uuid.UUID | None = None  # set: a calendar push (services/calendar_pushes.py)


def delivery_out(d: Delivery) -> DeliveryOut:
    return DeliveryOut(
        event_id=d.event_id,
        webhook_id=d.endpoint_id,
        status=d.status,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at,
    )


async def claim(
    session: AsyncSession,
    *,
    now: datetime,
    worker_id: str,
    lease: timedelta,
    limit: int,
    skip: Sequence[uuid.UUID] = (),
) -> list[Claim]:
    """Take due deliveries for `lease`. Per target and booking, only the oldest pending one
    is due: a later event waits while an earlier one is still being retried. None of the
    targets `skip` is taken (the worker's slow ones: worker_slots.py).

    The lease and the attempt count are taken by one UPDATE ... RETURNING over the due rows
    (locked with SKIP LOCKED on PostgreSQL), which also reads what to send where: on
    PostgreSQL in one statement on the driver, on SQLite with a second query."""
    if limit <= 0:
        return []
    given = {"now": now, "until": now + lease, "worker": worker_id, "limit": limit}
    given["skip"] = list(skip)
    rows: Sequence[Any] = []
    if engine := _postgres_engine(session):
        prepared = sql.claim_prepared(engine.dialect, skipping=bool(skip))
        found = await driver_fetch(engine, prepared.sql, *prepared.arguments(given))
        rows = [prepared.converted(r) for r in found]
    elif not skip and isinstance(session.bind, AsyncEngine):  # SQLite, in one call on its thread
        async with session.bind.connect() as conn:
            rows = await sqlite_deliveries.claim(conn, given)
    else:
        async with session.begin():
            conn = await session.connection()
            ids = [
                r.id
                for r in await conn.execute(
                    sql.take_due(postgres=False, skipping=bool(skip)), given
                )
            ]
            if ids:
                rows = (await conn.execute(sql.to_send(), {"ids": ids})).all()
    return await claims_of(session, rows, now)


async def claims_of(session: AsyncSession, rows: Sequence[Any], now: datetime) -> list[Claim]:
    """The claims of `claim_in_one`'s rows (or of the fan-out's, born leased): signed with the
    secrets that sign now (worked out once per target), a `timekit` target's body rendered now
    (webhooks/timekit.py)."""
    timekit_events = {r[2]: r[4] for r in rows if r[10] == timekit.FORMAT}
    bodies: dict[uuid.UUID, str] = {}
    if timekit_events:
        async with session.begin():
            bodies = await timekit.bodies(session, timekit_events)
    secrets_of: dict[uuid.UUID, list[str]] = {}
    claims = []
    for id_, attempt, event_id, target, payload, request_id, url, *keys, format_, calendar in rows:
        if (secrets := secrets_of.get(target)) is None:
            secret, previous, expires_at = keys
            secrets = secrets_of[target] = signing_secrets(
                secret=secret, previous=previous, previous_expires_at=expires_at, now=now
            )
        if format_ == timekit.FORMAT:
            payload = bodies[event_id]
        claims.append(
            Claim(
                id_, attempt, event_id, target, payload, url, secrets, format_, request_id, calendar
            )
        )
    return claims


async def finish(
    session: AsyncSession,
    *,
    results: Sequence[tuple[Claim, Outcome]],
    now: datetime,
    worker_id: str,
    jitter: Callable[[], float],
) -> list[Claim]:
    """Log a batch of attempts and decide what comes next for each, in one transaction.

    Each attempt is settled where the claim is still ours (a failure with its retry time) and
    logged: on PostgreSQL one statement for the batch (`SETTLE_IN_ONE`); on SQLite the failures
    one by one, then the successes and the log in one call on its thread
    (services/sqlite_deliveries.py). A success
    touches its target's row only if it was failing, so concurrent deliveries to one target do
    not queue on it. Returns the claims whose lease ran out before this (another worker may
    have taken them over): their attempt is logged, nothing else is changed.
    """
    if not results:
        return []
    plans = []
    for claim_, outcome in results:
        retry_at = None
        if not outcome.ok and outcome.status_code != 410:
            retry_at = next_retry_at(claim_.attempt, now, jitter())
        plans.append((claim_, outcome, retry_at))
    if session.sync_session.get_bind().dialect.name == "postgresql":
        settled = await _finish_in_one(session, _postgres_engine(session), plans, now, worker_id)
        return [c for c, _, _ in plans if c.delivery_id not in settled]
    settled = set()
    if isinstance(session.bind, AsyncEngine) and all(o.ok for _, o, _ in plans):
        # all succeeded, the common case: the whole transaction in one call on SQLite's thread
        async with session.bind.connect() as conn:
            await _record_on_sqlite(conn, plans, settled, now, worker_id, transaction=True)
        return [c for c, _, _ in plans if c.delivery_id not in settled]
    async with session.begin():
        for claim_, outcome, retry_at in plans:
            if outcome.ok:
                continue
            mine = await session.scalar(
                update(table_of(Delivery))
                .where(
                    Delivery.locked_by == worker_id,
                    Delivery.id == claim_.delivery_id,
                    Delivery.attempts == claim_.attempt,
                )
                .values(
                    status="pending" if retry_at else "failed",
                    next_attempt_at=retry_at,
                    locked_until=None,
                    locked_by=None,
                    updated_at=now,
                )
                .returning(Delivery.id)
            )
            if mine is not None:
                settled.add(mine)
                await _after_failure(session, claim_.endpoint_id, outcome, now)
        conn = await session.connection()
        await _record_on_sqlite(conn, plans, settled, now, worker_id, transaction=False)
    return [c for c, _, _ in plans if c.delivery_id not in settled]


async def _record_on_sqlite(
    conn: AsyncConnection,
    plans: list[tuple[Claim, Outcome, datetime | None]],
    settled: set[uuid.UUID],
    now: datetime,
    worker_id: str,
    *,
    transaction: bool,
) -> None:
    """SQLite: the successes settled (added to `settled`, which holds the failures settled) and
    every attempt logged, in one call on its thread (services/sqlite_deliveries.py); a
    success's log has no retry time, so the log does not wait for what the successes settle.
    `transaction`: the call is the whole transaction (a connection not in one)."""
    succeeded = [c for c, o, _ in plans if o.ok]
    logged = [
        (
            *(new_id(), c.delivery_id, c.endpoint_id, c.event_id, c.attempt, now),
            *(o.status_code, o.error, o.duration_ms, o.response_body),
            retry_at if c.delivery_id in settled else None,
            worker_id,
        )
        for c, o, retry_at in plans
    ]
    keys = [(c.delivery_id, c.endpoint_id, c.attempt) for c in succeeded]
    done = await sqlite_deliveries.record(conn, keys, logged, now, worker_id, transaction)
    settled.update(succeeded[i].delivery_id for i in done)


async def _finish_in_one(
    session: AsyncSession,
    engine: AsyncEngine | None,
    plans: list[tuple[Claim, Outcome, datetime | None]],
    now: datetime,
    worker_id: str,
) -> set[uuid.UUID]:
    """PostgreSQL: settle and log the batch in one statement (`SETTLE_IN_ONE`), on the driver
    when all succeeded and the session is on an `engine` (its own transaction, one round trip);
    otherwise in the session's transaction, which also carries what failures do to their
    targets (`_after_failure`)."""
    args = (
        sql.rows_of(
            [c.delivery_id for c, _, _ in plans],
            [new_id() for _ in plans],
            [c.endpoint_id for c, _, _ in plans],
            [c.event_id for c, _, _ in plans],
        ),
        sql.rows_of(
            [c.attempt for c, _, _ in plans],
            [o.status_code for _, o, _ in plans],
            [o.duration_ms for _, o, _ in plans],
        ),
        sql.rows_of(
            [o.error for _, o, _ in plans],
            ["succeeded" if o.ok else "pending" if r else "failed" for _, o, r in plans],
            [o.response_body for _, o, _ in plans],
        ),
        [r for _, _, r in plans],
        now,
        worker_id,
    )
    if engine is not None and all(o.ok for _, o, _ in plans):
        return {r[0] for r in await driver_fetch(engine, sql.SETTLE_IN_ONE, *args)}
    async with session.begin():
        conn = await session.connection()
        settled = set((await conn.exec_driver_sql(sql.SETTLE_IN_ONE, args)).scalars())
        for c, o, _ in plans:
            if not o.ok and c.delivery_id in settled:
                await _after_failure(session, c.endpoint_id, o, now)
    return settled


async def release(session: AsyncSession, *, claims: list[Claim], worker_id: str) -> None:
    """Give back claims that were never sent (graceful stop): as if never taken."""
    if not claims:
        return
    async with session.begin():
        for c in claims:
            await session.execute(
                update(Delivery)
                .where(
                    Delivery.id == c.delivery_id,
                    Delivery.locked_by == worker_id,
                    Delivery.attempts == c.attempt,
                )
                .values(locked_until=None, locked_by=None, attempts=Delivery.attempts - 1)
            )


def _postgres_engine(session: AsyncSession) -> AsyncEngine | None:
    """The engine, where claims and records take one statement each on its driver (PostgreSQL,
    a session on the engine); None: the statements one by one on the session."""
    bind = session.bind
    if isinstance(bind, AsyncEngine) and bind.dialect.name == "postgresql":
        return bind
    return None


# -- the webhook channel -------------------------------------------------------------------------


async def _after_failure(
    session: AsyncSession, endpoint_id: uuid.UUID, outcome: Outcome, now: datetime
) -> None:
    """A failure starts or continues its endpoint's failing streak, and switches the endpoint
    off when domain/webhooks.py says so."""
    endpoint = await session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).with_for_update()
    )
    assert endpoint is not None
    endpoint.failing_since = endpoint.failing_since or now
    if endpoint.calendar_id is not None or endpoint.format in emails.FORMATS:
        return  # a calendar's pushes and emails are never switched off; their log shows it
    reason = should_disable(
        status_code=outcome.status_code, failing_since=endpoint.failing_since, now=now
    )
    if reason and endpoint.enabled:
        endpoint.enabled = False
        endpoint.disabled_reason = reason
        endpoint.updated_at = now
        record_event(
            session,
            app_id=endpoint.app_id,
            type_="webhook.disabled",
            booking_id=None,
            data={"webhook": webhook_out(endpoint).model_dump(mode="json"), "reason": reason},
            now=now,
        )
