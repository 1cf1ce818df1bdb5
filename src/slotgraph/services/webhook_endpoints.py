"""Webhook endpoints (the API side): register, change, rotate, test, and read the delivery log.

Delivery itself is the worker's: services/deliveries.py.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import App, Delivery, DeliveryAttempt, WebhookEndpoint
from slotgraph.errors import LimitReached, NotFound, ValidationFailed
from slotgraph.notifications.kinds import FORMATS as EMAIL_FORMATS
from slotgraph.schemas import Page
from slotgraph.services.common import (
    IfMatch,
    Principal,
    check_version,
    decode_cursor,
    encode_cursor,
)
from slotgraph.services.deliveries import delivery_out
from slotgraph.services.events import load_event
from slotgraph.services.outbox import new_delivery, record_event
from slotgraph.services.views import webhook_out
from slotgraph.webhook_schemas import (
    AttemptOut,
    DeliveryOut,
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
)
from slotgraph.webhooks.signing import new_secret
from slotgraph.webhooks.ssrf import UrlNotAllowed, check_url

ROTATION_OVERLAP = timedelta(hours=24)


def _with_secret(e: WebhookEndpoint) -> WebhookWithSecret:
    return WebhookWithSecret(**webhook_out(e).model_dump(), secret=e.secret)


async def _allowed(url: str, allow_private: bool) -> None:
    try:
        await check_url(url, allow_private=allow_private)
    except UrlNotAllowed as exc:
        raise ValidationFailed.one("url", str(exc)) from None


def _webhooks_of(app_id: uuid.UUID) -> tuple[ColumnElement[bool], ...]:
    """An app's webhooks, the one rule for reading, listing and counting them (`MAX_WEBHOOKS`):
    not deleted, and neither a calendar's push channel nor one of the app's email targets,
    which share the table."""
    return (
        WebhookEndpoint.app_id == app_id,
        WebhookEndpoint.deleted_at.is_(None),
        WebhookEndpoint.calendar_id.is_(None),
        WebhookEndpoint.format.not_in(EMAIL_FORMATS),
    )


async def _load(
    session: AsyncSession, app_id: uuid.UUID, webhook_id: uuid.UUID, *, lock: bool = False
) -> WebhookEndpoint:
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.id == webhook_id, *_webhooks_of(app_id))
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    endpoint = await session.scalar(stmt)
    if endpoint is None:
        raise NotFound(f"No webhook {webhook_id}.")
    return endpoint


# Webhooks an app may have (deleted ones aside). The fan-out writes one delivery per event and
# endpoint, up to 500 events at once, in one transaction: with 1,000 endpoints, 100 events were
# 100,100 deliveries, 3.9 s of CPU and 200 MB in the worker, and SQLite's write lock held 11 s
# for every app; nothing bounded an app's endpoints.
MAX_WEBHOOKS = 50


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
        # The app's row, locked: two creates at once count one after the other.
        await session.execute(select(App.id).where(App.id == principal.app_id).with_for_update())
        count = await session.scalar(select(func.count()).where(*_webhooks_of(principal.app_id)))
        count = count or 0
        if count >= MAX_WEBHOOKS:
            # An app may hold more than the cap, made before it (no bound until 2026-11-30).
            delete = "one" if count == MAX_WEBHOOKS else str(count - MAX_WEBHOOKS + 1)
            raise LimitReached(
                f"This app has {count} webhooks and may have at most {MAX_WEBHOOKS}; delete "
                f"{delete} first (one endpoint can take every event, or a list of them)."
            )
        endpoint = WebhookEndpoint(
            app_id=principal.app_id,
            url=data.url,
            events=data.events,
            format=data.format,
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
            .where(*_webhooks_of(principal.app_id))
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
    if_match: IfMatch = None,
) -> WebhookOut:
    changes = data.model_dump(exclude_unset=True)
    if changes.get("url"):
        await _allowed(changes["url"], allow_private)
    async with session.begin():
        endpoint = await _load(session, principal.app_id, webhook_id, lock=True)
        check_version(principal, if_match=if_match, current=endpoint.version)
        if changes.get("url"):
            endpoint.url = changes["url"]
        if "events" in changes:
            endpoint.events = changes["events"]  # null: every event
        if "description" in changes:
            endpoint.description = changes["description"]
        if changes.get("format"):
            endpoint.format = changes["format"]
        if changes.get("enabled") is True and not endpoint.enabled:
            endpoint.enabled, endpoint.disabled_reason, endpoint.failing_since = True, None, None
        elif changes.get("enabled") is False and endpoint.enabled:
            endpoint.enabled, endpoint.disabled_reason = False, "Disabled through the API."
        endpoint.updated_at = now
        endpoint.version += 1
        return webhook_out(endpoint)


async def delete_webhook(
    session: AsyncSession,
    *,
    principal: Principal,
    webhook_id: uuid.UUID,
    now: datetime,
    if_match: IfMatch = None,
) -> None:
    """Stop delivering to it. Its delivery log stays readable in the database."""
    async with session.begin():
        endpoint = await _load(session, principal.app_id, webhook_id, lock=True)
        check_version(principal, if_match=if_match, current=endpoint.version)
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
        endpoint.version += 1
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
        delivery = new_delivery(endpoint, event, now)
        session.add(delivery)
        return delivery_out(delivery)


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
        event = await load_event(session, principal.app_id, event_id)
        delivery = await session.scalar(
            select(Delivery)
            .where(Delivery.endpoint_id == endpoint.id, Delivery.event_id == event.id)
            .with_for_update()
        )
        if delivery is None:
            delivery = new_delivery(endpoint, event, now)
            session.add(delivery)
        else:
            delivery.status = "pending"
            delivery.next_attempt_at = now
            delivery.locked_until = None
            delivery.locked_by = None
            delivery.updated_at = now
        return delivery_out(delivery)
