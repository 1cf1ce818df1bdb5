"""The worker's delivery pipeline: claim, send, record the attempt, back off, retry.

Each step is its own short transaction; the send happens outside any:
  dispatch  - claim undispatched events, create one delivery per target that wants the event
  claim     - take due deliveries with a lease (SKIP LOCKED on PostgreSQL), count the attempt
  (send)    - by the channel, outside any transaction (webhooks/sender.py)
  finish    - record a batch's attempts in one transaction; succeed, schedule the retry
              (domain/deliveries.py), or give up
  release   - give back claims that were never sent (graceful stop)

The lease, the attempt count, the ordering per booking, the retry schedule and the attempt log
are the same for every channel. What belongs to the webhook channel is kept to the functions
under "the webhook channel" below: which targets want an event (`_targets`), where and how to
send a claim (`_address`), and what an attempt does to its target's health (`_after_success`,
`_after_failure`).
A second channel (emails, calendar pushes) supplies those and its own render and send; it does
not copy the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import Delivery, Event, WebhookEndpoint, new_id
from slotgraph.db.models.base import table_of
from slotgraph.domain.deliveries import Outcome, next_retry_at
from slotgraph.domain.webhooks import should_disable, signing_secrets, wants
from slotgraph.notifications import channel as emails
from slotgraph.services import calendar_pushes
from slotgraph.services import delivery_statements as sql
from slotgraph.services.outbox import delivery_row, record_event
from slotgraph.services.views import webhook_out
from slotgraph.webhook_schemas import DeliveryOut
from slotgraph.webhooks import timekit


@dataclass(frozen=True)
class Claim:
    """One leased attempt: what to send (`payload`, the event's bytes) and where (`url`,
    signed with `secrets`)."""

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


async def dispatch(session: AsyncSession, *, now: datetime, limit: int = 500) -> int:
    """Fan new events out into deliveries, one per target that wants them."""
    async with session.begin():
        events = list(
            (
                await session.scalars(
                    select(Event)
                    .where(Event.dispatched_at.is_(None))
                    .order_by(Event.seq)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
        )
        if not events:
            return 0
        targets = await _targets(session, events)
        calendar_wants = await calendar_pushes.wanted(session, targets, events)
        email_wants = await emails.wanted(session, targets, events)
        rows = [
            delivery_row(target, event, now)
            for event in events
            for target in targets
            if target.app_id == event.app_id
            and wants(
                filters=target.events,
                subscribed_at=target.created_at,
                event_type=event.type,
                event_at=event.created_at,
            )
            and calendar_wants(target, event)
            and email_wants(target, event)
        ]
        # Core statements, not the unit of work: one INSERT for the rows, one UPDATE for the
        # events (the ORM flushed an object and an UPDATE per row: most of a fan-out's CPU).
        if rows:
            await session.execute(insert(table_of(Delivery)), rows)
        await session.execute(
            update(table_of(Event))
            .where(Event.seq.in_([e.seq for e in events]))
            .values(dispatched_at=now)
        )
    return len(events)


async def claim(
    session: AsyncSession, *, now: datetime, worker_id: str, lease: timedelta, limit: int
) -> list[Claim]:
    """Take due deliveries for `lease`. Per target and booking, only the oldest pending one
    is due: a later event waits while an earlier one is still being retried.

    The lease and the attempt count are taken by one UPDATE ... RETURNING over the due rows
    (locked with SKIP LOCKED on PostgreSQL); one more query reads what to send where."""
    if limit <= 0:
        return []
    async with session.begin():
        conn = await session.connection()
        given = {"now": now, "until": now + lease, "worker": worker_id, "limit": limit}
        taken = sorted((await conn.execute(sql.take_due(), given)).all(), key=lambda r: r[4:])
        if not taken:
            return []
        addresses = await _address(session, {r.endpoint_id for r in taken}, now)
        rows = await conn.execute(sql.payloads(), {"ids": list({r.event_id for r in taken})})
        events = {event_id: (payload, request_id) for event_id, payload, request_id in rows}
        timekit_events = {
            r.event_id for r in taken if addresses[r.endpoint_id][2] == timekit.FORMAT
        }
        timekit_bodies = await timekit.bodies(session, {e: events[e][0] for e in timekit_events})
    claims = []
    for delivery_id, attempt, event_id, endpoint_id, _, _ in taken:
        url, secrets, format_, calendar_id = addresses[endpoint_id]
        payload, request_id = events[event_id]
        claims.append(
            Claim(
                delivery_id=delivery_id,
                attempt=attempt,
                event_id=event_id,
                endpoint_id=endpoint_id,
                payload=timekit_bodies[event_id] if format_ == timekit.FORMAT else payload,
                url=url,
                secrets=secrets,
                format=format_,
                request_id=request_id,
                calendar_id=calendar_id,
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

    Successes, the common case, are one UPDATE for the whole batch, failures one each (with
    their retry time), where the claim is still ours; the attempts are one INSERT. A success
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
    settled: set[uuid.UUID] = set()
    async with session.begin():
        conn = await session.connection()
        if succeeded := [(c.delivery_id, c.attempt) for c, o, _ in plans if o.ok]:
            given = {"worker": worker_id, "pairs": succeeded, "now": now}
            settled.update(await conn.scalars(sql.settle_succeeded(), given))
            ok = {c.endpoint_id for c, o, _ in plans if o.ok and c.delivery_id in settled}
            await conn.execute(sql.ended_streaks(), {"ids": list(ok), "now": now})
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
        await conn.execute(
            sql.log_attempts(),
            [
                {
                    "id": new_id(),
                    "delivery_id": c.delivery_id,
                    "endpoint_id": c.endpoint_id,
                    "event_id": c.event_id,
                    "attempt": c.attempt,
                    "at": now,
                    "status_code": o.status_code,
                    "error": o.error,
                    "duration_ms": o.duration_ms,
                    "response_body": o.response_body,
                    "next_retry_at": retry_at if c.delivery_id in settled else None,
                    "worker_id": worker_id,
                }
                for c, o, retry_at in plans
            ],
        )
    return [c for c, _, _ in plans if c.delivery_id not in settled]


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


# -- the webhook channel -------------------------------------------------------------------------


async def _targets(session: AsyncSession, events: Sequence[Event]) -> Sequence[WebhookEndpoint]:
    """The enabled endpoints of the apps these events belong to."""
    return (
        await session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.app_id.in_({e.app_id for e in events}),
                WebhookEndpoint.enabled.is_(True),
                WebhookEndpoint.deleted_at.is_(None),
            )
        )
    ).all()


async def _address(
    session: AsyncSession, endpoint_ids: set[uuid.UUID], now: datetime
) -> dict[uuid.UUID, tuple[str, list[str], str, uuid.UUID | None]]:
    """Per endpoint: the URL, the secrets that sign the request now, its format, and the
    calendar it pushes to (a calendar push is addressed at send time, by its channel)."""
    conn = await session.connection()
    return {
        id_: (
            url,
            signing_secrets(
                secret=secret, previous=previous, previous_expires_at=expires_at, now=now
            ),
            format_,
            calendar_id,
        )
        for id_, url, secret, previous, expires_at, format_, calendar_id in await conn.execute(
            sql.addresses(), {"ids": list(endpoint_ids)}
        )
    }


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
