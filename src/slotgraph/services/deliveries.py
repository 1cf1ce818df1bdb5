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

from sqlalchemy import exists, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from slotgraph.db.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint, new_id
from slotgraph.domain.deliveries import Outcome, next_retry_at
from slotgraph.domain.webhooks import should_disable, signing_secrets, wants
from slotgraph.notifications import channel as emails
from slotgraph.services import calendar_pushes
from slotgraph.services.outbox import record_event
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
    payload: str
    url: str
    secrets: list[str]
    format: str = "standard"  # the endpoint's format: "standard" or "timekit"
    request_id: str | None = None  # of the request that caused the event: X-Request-Id
    calendar_id: uuid.UUID | None = None  # set: a calendar push (services/calendar_pushes.py)


def new_delivery(endpoint: WebhookEndpoint, event: Event, now: datetime) -> Delivery:
    return Delivery(
        app_id=endpoint.app_id,
        endpoint_id=endpoint.id,
        event_id=event.id,
        event_seq=event.seq,
        booking_id=event.booking_id,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )


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
        for event in events:
            event.dispatched_at = now
            for target in targets:
                if (
                    target.app_id == event.app_id
                    and wants(
                        filters=target.events,
                        subscribed_at=target.created_at,
                        event_type=event.type,
                        event_at=event.created_at,
                    )
                    and calendar_wants(target, event)
                    and email_wants(target, event)
                ):
                    session.add(new_delivery(target, event, now))
    return len(events)


async def claim(
    session: AsyncSession, *, now: datetime, worker_id: str, lease: timedelta, limit: int
) -> list[Claim]:
    """Take due deliveries for `lease`. Per target and booking, only the oldest pending one
    is due: a later event waits while an earlier one is still being retried."""
    earlier = aliased(Delivery)
    stmt = (
        select(Delivery)
        .join(WebhookEndpoint, WebhookEndpoint.id == Delivery.endpoint_id)
        .where(
            Delivery.status == "pending",
            Delivery.next_attempt_at <= now,
            or_(Delivery.locked_until.is_(None), Delivery.locked_until < now),
            WebhookEndpoint.enabled.is_(True),
            WebhookEndpoint.deleted_at.is_(None),
            ~exists().where(
                earlier.endpoint_id == Delivery.endpoint_id,
                earlier.booking_id == Delivery.booking_id,
                earlier.event_seq < Delivery.event_seq,
                earlier.status == "pending",
            ),
        )
        .order_by(Delivery.next_attempt_at, Delivery.event_seq)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
    )
    async with session.begin():
        deliveries = list((await session.scalars(stmt)).all())
        if not deliveries:
            return []
        addresses = await _address(session, deliveries, now)
        rows = await session.execute(
            select(Event.id, Event.payload, Event.request_id).where(
                Event.id.in_([d.event_id for d in deliveries])
            )
        )
        events = {event_id: (payload, request_id) for event_id, payload, request_id in rows}
        payloads = {event_id: payload for event_id, (payload, _) in events.items()}
        timekit_events = {
            d.event_id for d in deliveries if addresses[d.endpoint_id][2] == timekit.FORMAT
        }
        timekit_bodies = await timekit.bodies(session, {e: payloads[e] for e in timekit_events})
        claims = []
        for d in deliveries:
            d.attempts += 1
            d.locked_until = now + lease
            d.locked_by = worker_id
            d.updated_at = now
            url, secrets, format_, calendar_id = addresses[d.endpoint_id]
            body = timekit_bodies[d.event_id] if format_ == timekit.FORMAT else None
            claims.append(
                Claim(
                    delivery_id=d.id,
                    attempt=d.attempts,
                    event_id=d.event_id,
                    payload=body or payloads[d.event_id],
                    url=url,
                    secrets=secrets,
                    format=format_,
                    request_id=events[d.event_id][1],
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

    Successes, the common case, are one UPDATE for the whole batch; they touch the target's row
    only if it was failing, so concurrent deliveries to one target do not queue on it. Returns
    the claims whose lease ran out before this (another worker may have taken them over): their
    attempt is logged, nothing else is changed.
    """
    if not results:
        return []
    plans = []
    for claim_, outcome in results:
        retry_at = None
        if not outcome.ok and outcome.status_code != 410:
            retry_at = next_retry_at(claim_.attempt, now, jitter())
        plans.append((claim_, outcome, retry_at))
    ours = Delivery.locked_by == worker_id
    done = Delivery.id, Delivery.endpoint_id, Delivery.event_id
    async with session.begin():
        rows: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]] = {}
        succeeded = [(c.delivery_id, c.attempt) for c, o, _ in plans if o.ok]
        if succeeded:
            result = await session.execute(
                update(Delivery)
                .where(ours, tuple_(Delivery.id, Delivery.attempts).in_(succeeded))
                .values(_settled("succeeded", None, now))
                .returning(*done)
                .execution_options(synchronize_session=False)
            )
            rows.update((d, (e, ev)) for d, e, ev in result)
            await _after_success(session, {e for e, _ in rows.values()}, now)
        for claim_, outcome, retry_at in plans:
            if outcome.ok:
                continue
            result = await session.execute(
                update(Delivery)
                .where(ours, Delivery.id == claim_.delivery_id, Delivery.attempts == claim_.attempt)
                .values(_settled("pending" if retry_at else "failed", retry_at, now))
                .returning(*done)
                .execution_options(synchronize_session=False)
            )
            for d, e, ev in result:
                rows[d] = (e, ev)
                await _after_failure(session, e, outcome, now)
        lost = [c for c, _, _ in plans if c.delivery_id not in rows]
        if lost:  # our lease ran out and another worker may have taken over: only log
            result = await session.execute(
                select(*done).where(Delivery.id.in_([c.delivery_id for c in lost]))
            )
            rows.update((d, (e, ev)) for d, e, ev in result)
        lost_ids = {c.delivery_id for c in lost}
        await session.execute(
            insert(DeliveryAttempt),
            [
                {
                    "id": new_id(),
                    "delivery_id": c.delivery_id,
                    "endpoint_id": rows[c.delivery_id][0],
                    "event_id": rows[c.delivery_id][1],
                    "attempt": c.attempt,
                    "at": now,
                    "status_code": o.status_code,
                    "error": o.error,
                    "duration_ms": o.duration_ms,
                    "response_body": o.response_body,
                    "next_retry_at": None if c.delivery_id in lost_ids else retry_at,
                    "worker_id": worker_id,
                }
                for c, o, retry_at in plans
            ],
        )
    return lost


def _settled(status: str, retry_at: datetime | None, now: datetime) -> dict[str, object]:
    return {
        "status": status,
        "next_attempt_at": retry_at,
        "locked_until": None,
        "locked_by": None,
        "updated_at": now,
    }


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
    session: AsyncSession, deliveries: Sequence[Delivery], now: datetime
) -> dict[uuid.UUID, tuple[str, list[str], str, uuid.UUID | None]]:
    """Per endpoint: the URL, the secrets that sign the request now, its format, and the
    calendar it pushes to (a calendar push is addressed at send time, by its channel)."""
    endpoints = await session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.id.in_({d.endpoint_id for d in deliveries}))
    )
    return {
        e.id: (
            e.url,
            signing_secrets(
                secret=e.secret,
                previous=e.previous_secret,
                previous_expires_at=e.previous_secret_expires_at,
                now=now,
            ),
            e.format,
            e.calendar_id,
        )
        for e in endpoints
    }


async def _after_success(
    session: AsyncSession, endpoint_ids: set[uuid.UUID], now: datetime
) -> None:
    """A success clears its endpoint's failing streak."""
    if endpoint_ids:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id.in_(endpoint_ids), WebhookEndpoint.failing_since.is_not(None))
            .values(failing_since=None, last_success_at=now)
            .execution_options(synchronize_session=False)
        )


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
