from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from slotgraph.api.deps import ETag, IfMatch, Now, SecretKey, Session
from slotgraph.bounds import Instant
from slotgraph.schemas import Listed, Page
from slotgraph.services import events, webhook_endpoints
from slotgraph.webhook_schemas import (
    AttemptOut,
    DeliveryOut,
    EventOut,
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
)

router = APIRouter(tags=["webhooks"])


def _allow_private(request: Request) -> bool:
    return bool(request.app.state.settings.webhook_allow_private_networks)


@router.post("/v1/webhooks", status_code=201)
async def create_webhook(
    body: WebhookCreate,
    principal: SecretKey,
    session: Session,
    now: Now,
    request: Request,
    response: Response,
) -> WebhookWithSecret:
    """Register an endpoint. Its signing `secret` is shown here and on rotation only."""
    out = await webhook_endpoints.create_webhook(
        session, principal=principal, data=body, now=now, allow_private=_allow_private(request)
    )
    response.headers["Location"] = f"/v1/webhooks/{out.webhook_id}"
    return out


@router.get("/v1/webhooks")
async def list_webhooks(principal: SecretKey, session: Session) -> Listed[WebhookOut]:
    return Listed[WebhookOut](
        data=await webhook_endpoints.list_webhooks(session, principal=principal)
    )


@router.get("/v1/webhooks/{webhook_id}")
async def get_webhook(
    webhook_id: uuid.UUID, principal: SecretKey, session: Session, tag: ETag
) -> WebhookOut:
    out = await webhook_endpoints.get_webhook(session, principal=principal, webhook_id=webhook_id)
    tag(out.version)
    return out


@router.patch("/v1/webhooks/{webhook_id}")
async def update_webhook(
    webhook_id: uuid.UUID,
    body: WebhookUpdate,
    principal: SecretKey,
    session: Session,
    now: Now,
    request: Request,
    if_match: IfMatch,
    tag: ETag,
) -> WebhookOut:
    """Change `url`, `events`, `description`, `format`; `enabled: true` switches a disabled one
    back on."""
    out = await webhook_endpoints.update_webhook(
        session,
        principal=principal,
        webhook_id=webhook_id,
        data=body,
        now=now,
        allow_private=_allow_private(request),
        if_match=if_match,
    )
    tag(out.version)
    return out


@router.delete("/v1/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(
    webhook_id: uuid.UUID, principal: SecretKey, session: Session, now: Now, if_match: IfMatch
) -> None:
    await webhook_endpoints.delete_webhook(
        session, principal=principal, webhook_id=webhook_id, now=now, if_match=if_match
    )


@router.post("/v1/webhooks/{webhook_id}/rotate-secret")
async def rotate_secret(
    webhook_id: uuid.UUID, principal: SecretKey, session: Session, now: Now
) -> WebhookWithSecret:
    """A new secret. The old one keeps signing, as a second signature, for 24 hours."""
    return await webhook_endpoints.rotate_secret(
        session, principal=principal, webhook_id=webhook_id, now=now
    )


@router.post("/v1/webhooks/{webhook_id}/test", status_code=202)
async def send_test(
    webhook_id: uuid.UUID, principal: SecretKey, session: Session, now: Now
) -> DeliveryOut:
    """Queue a `webhook.test` event for this endpoint only."""
    return await webhook_endpoints.send_test(
        session, principal=principal, webhook_id=webhook_id, now=now
    )


@router.get("/v1/webhooks/{webhook_id}/deliveries")
async def list_deliveries(
    webhook_id: uuid.UUID,
    principal: SecretKey,
    session: Session,
    event_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[AttemptOut]:
    """Every attempt, newest first: status code or error, duration, the answer's first 2 KB."""
    return await webhook_endpoints.list_attempts(
        session,
        principal=principal,
        webhook_id=webhook_id,
        event_id=event_id,
        limit=limit,
        cursor=cursor,
    )


@router.post("/v1/webhooks/{webhook_id}/deliveries/{event_id}/retry", status_code=202)
async def retry_delivery(
    webhook_id: uuid.UUID, event_id: uuid.UUID, principal: SecretKey, session: Session, now: Now
) -> DeliveryOut:
    """Send this event to this endpoint again, now."""
    return await webhook_endpoints.retry_delivery(
        session, principal=principal, webhook_id=webhook_id, event_id=event_id, now=now
    )


@router.get("/v1/events", tags=["events"])
async def list_events(
    principal: SecretKey,
    session: Session,
    type: Annotated[list[str] | None, Query()] = None,
    booking_id: uuid.UUID | None = None,
    from_: Annotated[Instant | None, Query(alias="from")] = None,
    to: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[EventOut]:
    """Events in the order they happened, with the exact payload sent to webhooks."""
    return await events.list_events(
        session,
        principal=principal,
        type_=type or [],
        booking_id=booking_id,
        from_=from_,
        to=to,
        limit=limit,
        cursor=cursor,
    )


@router.get("/v1/events/{event_id}", tags=["events"])
async def get_event(event_id: uuid.UUID, principal: SecretKey, session: Session) -> EventOut:
    return await events.get_event(session, principal=principal, event_id=event_id)
