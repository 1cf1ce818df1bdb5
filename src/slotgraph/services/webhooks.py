"""Webhook endpoints (API side) and deliveries (worker side).

The worker's cycle, each step its own short transaction:
  dispatch  - claim undispatched events, create one delivery per matching endpoint
  claim     - take due deliveries with a lease (SKIP LOCKED on PostgreSQL), count the attempt
  (send)    - outside any transaction
  finish    - log the attempt; succeed, schedule the retry, give up, or disable the endpoint
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import exists, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from slotgraph.db.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from slotgraph.domain.webhooks import matches, next_retry_at, should_disable
from slotgraph.errors import NotFound, ValidationFailed
from slotgraph.schemas import (
    AttemptOut,
    DeliveryOut,
    Page,
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
)
from slotgraph.services.common import Principal, decode_cursor, encode_cursor
from slotgraph.services.outbox import record_event
from slotgraph.webhooks.sender import Outcome
from slotgraph.webhooks.signing import new_secret
from slotgraph.webhooks.ssrf import UrlNotAllowed, check_url

ROTATION_OVERLAP = timedelta(hours=24)


def webhook_out(e: WebhookEndpoint) -> WebhookOut:
    return WebhookOut(
        webhook_id=e.id,
        url=e.url,
        events=e.events,
        description=e.description,
        enabled=e.enabled,
        disabled_reason=e.disabled_reason,
        created_at=e.created_at,
        updated_at=e.updated_at,
    )


def _with_secret(e: WebhookEndpoint) -> WebhookWithSecret:
    return WebhookWithSecret(**webhook_out(e).model_dump(), secret=e.secret)


async def _allowed(url: str, allow_private: bool) -> None:
    try:
        await check_url(url, allow_private=allow_private)
    except UrlNotAllowed as exc:
        raise ValidationFailed.one("url", str(exc)) from None


async def _load(
    session: AsyncSession, app_id: uuid.UUID, webhook_id: uuid.UUID, *, lock: bool = False
) -> WebhookEndpoint:
    stmt = select(WebhookEndpoint).where(
        WebhookEndpoint.id == webhook_id,
        WebhookEndpoint.app_id == app_id,
        WebhookEndpoint.deleted_at.is_(None),
    )
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    endpoint = await session.scalar(stmt)
    if endpoint is None:
        raise NotFound(f"No webhook {webhook_id}.")
    return endpoint


# -- endpoints (API) -----------------------------------------------------------------------------


async def create_webhook(
    session: AsyncSession,
    *,
    principal: Principal,
    data: WebhookCreate,
    now: datetime,
    allow_private: bool,
) -> WebhookWithSecret:
    await _allowed(data.url, allow_private)
    async with session.begin():
        endpoint = WebhookEndpoint(
            app_id=principal.app_id,
            url=data.url,
            events=data.events,
            description=data.description,
            enabled=True,
            secret=new_secret(),
            created_at=now,
            updated_at=now,
        )
        session.add(endpoint)
        await session.flush()
        return _with_secret(endpoint)


async def list_webhooks(session: AsyncSession, *, principal: Principal) -> list[WebhookOut]:
    async with session.begin():
        rows = await session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.app_id == principal.app_id, WebhookEndpoint.deleted_at.is_(None))
            .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
        return [webhook_out(e) for e in rows]


async def get_webhook(
    session: AsyncSession, *, principal: Principal, webhook_id: uuid.UUID
) -> WebhookOut:
    async with session.begin():
        return webhook_out(await _load(session, principal.app_id, webhook_id))


async def update_webhook(
    session: AsyncSession,
    *,
    principal: Principal,
    webhook_id: uuid.UUID,
    data: WebhookUpdate,
    now: datetime,
    allow_private: bool,
) -> WebhookOut:
    changes = data.model_dump(exclude_unset=True)
    if changes.get("url"):
        await _allowed(changes["url"], allow_private)
    async with session.begin():
        endpoint = await _load(session, principal.app_id, webhook_id, lock=True)
        if changes.get("url"):
            endpoint.url = changes["url"]
        if "events" in changes:
            endpoint.events = changes["events"]  # null: every event
        if "description" in changes:
            endpoint.description = changes["description"]
        if changes.get("enabled") is True and not endpoint.enabled:
            endpoint.enabled, endpoint.disabled_reason, endpoint.failing_since = True, None, None
        elif changes.get("enabled") is False and endpoint.enabled:
            endpoint.enabled, endpoint.disabled_reason = False, "Disabled through the API."
        endpoint.updated_at = now
        return webhook_out(endpoint)


async def delete_webhook(
    session: AsyncSession, *, principal: Principal, webhook_id: uuid.UUID, now: datetime
) -> None:
    """Stop delivering to it. Its delivery log stays readable in the database."""
    async with session.begin():
        endpoint = await _load(session, principal.app_id, webhook_id, lock=True)
        endpoint.deleted_at = now
        endpoint.enabled = False
        endpoint.updated_at = now


async def rotate_secret(
    session: AsyncSession, *, principal: Principal, webhook_id: uuid.UUID, now: datetime
) -> WebhookWithSecret:
    """A new secret; the old one keeps signing (as a second signature) for 24 hours."""
    async with session.begin():
        endpoint = await _load(session, principal.app_id, webhook_id, lock=True)
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
        endpoint.secret = new_secret()
        endpoint.updated_at = now
        return _with_secret(endpoint)


async def send_test(
    session: AsyncSession, *, principal: Principal, webhook_id: uuid.UUID, now: datetime
) -> DeliveryOut:
    """A `webhook.test` event for this endpoint only, queued for delivery now."""
    async with session.begin():
        endpoint = await _load(session, principal.app_id, webhook_id)
        event = record_event(
            session,
            app_id=principal.app_id,
            type_="webhook.test",
            booking_id=None,
            data={"webhook": webhook_out(endpoint).model_dump(mode="json")},
            now=now,
        )
        event.dispatched_at = now
        await session.flush()
        delivery = _new_delivery(endpoint, event, now)
        session.add(delivery)
        return _delivery_out(delivery)


async def list_attempts(
    session: AsyncSession,
    *,
    principal: Principal,
    webhook_id: uuid.UUID,
    event_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> Page[AttemptOut]:
    """The delivery log of one endpoint, newest first."""
    stmt = select(DeliveryAttempt).where(DeliveryAttempt.endpoint_id == webhook_id)
    if event_id is not None:
        stmt = stmt.where(DeliveryAttempt.event_id == event_id)
    if cursor is not None:
        at, id_ = decode_cursor(cursor)
        stmt = stmt.where(tuple_(DeliveryAttempt.at, DeliveryAttempt.id) < tuple_(at, id_))
    stmt = stmt.order_by(DeliveryAttempt.at.desc(), DeliveryAttempt.id.desc()).limit(limit + 1)
    async with session.begin():
        await _load(session, principal.app_id, webhook_id)
        rows = list((await session.scalars(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[AttemptOut](
        data=[
            AttemptOut(
                event_id=a.event_id,
                attempt=a.attempt,
                at=a.at,
                status_code=a.status_code,
                error=a.error,
                duration_ms=a.duration_ms,
                response_body=a.response_body,
                next_retry_at=a.next_retry_at,
            )
            for a in rows
        ],
        next_cursor=encode_cursor(rows[-1].at, rows[-1].id) if more else None,
    )


async def retry_delivery(
    session: AsyncSession,
    *,
    principal: Principal,
    webhook_id: uuid.UUID,
    event_id: uuid.UUID,
    now: datetime,
) -> DeliveryOut:
    """Send this event to this endpoint again, now (also one it never matched or gave up on)."""
    async with session.begin():
        endpoint = await _load(session, principal.app_id, webhook_id)
        event = await session.scalar(
            select(Event).where(Event.id == event_id, Event.app_id == principal.app_id)
        )
        if event is None:
            raise NotFound(f"No event {event_id}.")
        delivery = await session.scalar(
            select(Delivery)
            .where(Delivery.endpoint_id == endpoint.id, Delivery.event_id == event.id)
            .with_for_update()
        )
        if delivery is None:
            delivery = _new_delivery(endpoint, event, now)
            session.add(delivery)
        else:
            delivery.status = "pending"
            delivery.next_attempt_at = now
            delivery.locked_until = None
            delivery.locked_by = None
            delivery.updated_at = now
        return _delivery_out(delivery)


def _new_delivery(endpoint: WebhookEndpoint, event: Event, now: datetime) -> Delivery:
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


def _delivery_out(d: Delivery) -> DeliveryOut:
    return DeliveryOut(
        event_id=d.event_id,
        webhook_id=d.endpoint_id,
        status=d.status,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at,
    )


# -- the worker ----------------------------------------------------------------------------------


async def dispatch(session: AsyncSession, *, now: datetime, limit: int = 500) -> int:
    """Fan new events out into deliveries, one per enabled endpoint that wants them."""
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
        endpoints = (
            await session.scalars(
                select(WebhookEndpoint).where(
                    WebhookEndpoint.app_id.in_({e.app_id for e in events}),
                    WebhookEndpoint.enabled.is_(True),
                    WebhookEndpoint.deleted_at.is_(None),
                )
            )
        ).all()
        for event in events:
            event.dispatched_at = now
            for endpoint in endpoints:
                if (
                    endpoint.app_id == event.app_id
                    and endpoint.created_at <= event.created_at
                    and matches(endpoint.events, event.type)
                ):
                    session.add(_new_delivery(endpoint, event, now))
    return len(events)


@dataclass(frozen=True)
class Claim:
    delivery_id: uuid.UUID
    attempt: int
    url: str
    secrets: list[str]
    event_id: uuid.UUID
    payload: str


async def claim(
    session: AsyncSession, *, now: datetime, worker_id: str, lease: timedelta, limit: int
) -> list[Claim]:
    """Take due deliveries for `lease`. Per endpoint and booking, only the oldest pending one
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
        endpoints = {
            e.id: e
            for e in await session.scalars(
                select(WebhookEndpoint).where(
                    WebhookEndpoint.id.in_({d.endpoint_id for d in deliveries})
                )
            )
        }
        rows = await session.execute(
            select(Event.id, Event.payload).where(Event.id.in_([d.event_id for d in deliveries]))
        )
        payloads = {event_id: payload for event_id, payload in rows}
        claims = []
        for d in deliveries:
            d.attempts += 1
            d.locked_until = now + lease
            d.locked_by = worker_id
            d.updated_at = now
            endpoint = endpoints[d.endpoint_id]
            secrets = [endpoint.secret]
            expires = endpoint.previous_secret_expires_at
            if endpoint.previous_secret and expires is not None and expires > now:
                secrets.append(endpoint.previous_secret)
            claims.append(
                Claim(d.id, d.attempts, endpoint.url, secrets, d.event_id, payloads[d.event_id])
            )
        return claims


async def finish(
    session: AsyncSession,
    *,
    claim_: Claim,
    outcome: Outcome,
    now: datetime,
    worker_id: str,
    jitter: float,
) -> None:
    """Log the attempt and decide what comes next.

    A success touches only its own delivery row (and the endpoint only if it was failing), so
    concurrent deliveries to one endpoint do not queue behind each other on the endpoint row.
    """
    retry_at = None
    if not outcome.ok and outcome.status_code != 410:
        retry_at = next_retry_at(claim_.attempt, now, jitter)
    status = "succeeded" if outcome.ok else ("pending" if retry_at else "failed")
    async with session.begin():
        mine = await session.execute(
            update(Delivery)
            .where(
                Delivery.id == claim_.delivery_id,
                Delivery.locked_by == worker_id,
                Delivery.attempts == claim_.attempt,
            )
            .values(
                status=status,
                next_attempt_at=retry_at,
                locked_until=None,
                locked_by=None,
                updated_at=now,
            )
            .returning(Delivery.endpoint_id, Delivery.event_id)
        )
        row = mine.first()
        if row is None:  # our lease ran out and another worker took over: only log
            row = (
                await session.execute(
                    select(Delivery.endpoint_id, Delivery.event_id).where(
                        Delivery.id == claim_.delivery_id
                    )
                )
            ).one()
            retry_at = None
        elif outcome.ok:
            await session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == row[0], WebhookEndpoint.failing_since.is_not(None))
                .values(failing_since=None, last_success_at=now)
            )
        else:
            endpoint = await session.scalar(
                select(WebhookEndpoint).where(WebhookEndpoint.id == row[0]).with_for_update()
            )
            assert endpoint is not None
            endpoint.failing_since = endpoint.failing_since or now
            reason = should_disable(
                status_code=outcome.status_code, failing_since=endpoint.failing_since, now=now
            )
            if reason and endpoint.enabled:
                _disable(session, endpoint, reason, now)
        session.add(
            DeliveryAttempt(
                delivery_id=claim_.delivery_id,
                endpoint_id=row[0],
                event_id=row[1],
                attempt=claim_.attempt,
                at=now,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
                response_body=outcome.response_body,
                next_retry_at=retry_at,
                worker_id=worker_id,
            )
        )


def _disable(session: AsyncSession, endpoint: WebhookEndpoint, reason: str, now: datetime) -> None:
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


def parse_payload(payload: str) -> dict[str, object]:
    value = orjson.loads(payload)
    assert isinstance(value, dict)
    return value
