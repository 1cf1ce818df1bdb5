"""An app's emails as its owner reads them (`GET /v1/emails`, secret key): each is a delivery
to one of the app's two email targets (notifications/targets.py), with what became of it: sent,
failed, pending, or not sent at all (the inbox's hourly limit, ADR 0020; no address left).

Bounded reads only: newest first by event id (a UUIDv7, in the order the events were made),
read per target along the deliveries' unique (endpoint_id, event_id) index; a booking's through
its events (ix_events_booking_seq); each delivery's last attempt by the attempt log's
(endpoint_id, at) index, at its delivery's `updated_at` (a settle writes both with one `now`).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import Client, Delivery, DeliveryAttempt, Event, Resource, WebhookEndpoint
from slotgraph.errors import BadRequest
from slotgraph.notifications import kinds
from slotgraph.schemas import Page
from slotgraph.schemas.fields import is_one_address
from slotgraph.services import email_quota
from slotgraph.services.common import Principal
from slotgraph.webhook_schemas import EmailOut, EmailStatus

# The answers the email channel records for an email it did not send (notifications/channel.py)
NOTHING_TO_SEND = "nothing to send (no address any more)"
SUPPRESSED_PREFIX = email_quota.SUPPRESSED.partition("{")[0]
# An attempt's error about the server's own disk names its paths: not the app's to read.
_MAIL_DIR = "mail_dir: "
_MAIL_DIR_SAID = "the server could not write the email (its mail directory)"


def email_status(delivery_status: str, code: int | None, body: str | None) -> EmailStatus:
    """What became of an email, from its delivery's status and its last attempt's answer."""
    if delivery_status in ("pending", "failed"):
        return "pending" if delivery_status == "pending" else "failed"
    if code == 204 and body is not None:
        if body.startswith(SUPPRESSED_PREFIX):
            return "suppressed"
        if body == NOTHING_TO_SEND:
            return "skipped"
    return "sent"


def _said(status: EmailStatus, attempt: DeliveryAttempt | None) -> str | None:
    if attempt is None:
        return None
    if status in ("suppressed", "skipped"):
        return attempt.response_body
    error = attempt.error
    return _MAIL_DIR_SAID if error is not None and error.startswith(_MAIL_DIR) else error


def _cursor(event_id: uuid.UUID, rank: int) -> str:
    raw = orjson.dumps([str(event_id), rank])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str) -> tuple[uuid.UUID, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        event_id, rank = orjson.loads(raw)
        if not isinstance(rank, int) or isinstance(rank, bool):
            raise ValueError("rank")
        return uuid.UUID(event_id), rank
    except (ValueError, TypeError, AttributeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise BadRequest("cursor is not one this API returned", code_hint="cursor") from exc


async def list_emails(
    session: AsyncSession,
    *,
    principal: Principal,
    booking_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> Page[EmailOut]:
    """The app's emails (or one booking's), newest first; for one event, the customer's first."""
    after = _after(cursor) if cursor is not None else None
    async with session.begin():
        targets = (
            await session.execute(
                select(WebhookEndpoint.id, WebhookEndpoint.format).where(
                    WebhookEndpoint.app_id == principal.app_id,
                    WebhookEndpoint.format.in_(kinds.FORMATS),
                )
            )
        ).all()
        rank_of = {t.id: kinds.FORMATS.index(t.format) for t in targets}
        found: list[Delivery] = []
        for target, rank in rank_of.items():
            stmt = select(Delivery).where(Delivery.endpoint_id == target)
            if booking_id is not None:
                stmt = stmt.where(
                    Delivery.event_id.in_(
                        select(Event.id).where(
                            Event.app_id == principal.app_id, Event.booking_id == booking_id
                        )
                    )
                )
            if after is not None:  # the order: event id descending, then the audience's rank
                last, last_rank = after
                stmt = stmt.where(
                    Delivery.event_id <= last if rank > last_rank else Delivery.event_id < last
                )
            stmt = stmt.order_by(Delivery.event_id.desc()).limit(limit + 1)
            found += (await session.scalars(stmt)).all()
        found.sort(key=lambda d: (-d.event_id.int, rank_of[d.endpoint_id]))
        more = len(found) > limit
        page = found[:limit]
        data = await _shown(session, principal.app_id, page, rank_of)
    next_cursor = None
    if more:
        last_one = page[-1]
        next_cursor = _cursor(last_one.event_id, rank_of[last_one.endpoint_id])
    return Page[EmailOut](data=data, next_cursor=next_cursor)


async def _shown(
    session: AsyncSession,
    app_id: uuid.UUID,
    page: Sequence[Delivery],
    rank_of: dict[uuid.UUID, int],
) -> list[EmailOut]:
    """The page's emails with their events' kind, their recipients and their last attempts, in
    four reads whatever the page's length."""
    if not page:
        return []
    events = {
        e.id: e
        for e in await session.execute(
            select(Event.id, Event.type, Event.payload).where(
                Event.id.in_([d.event_id for d in page])
            )
        )
    }
    bookings: dict[uuid.UUID, dict[str, Any]] = {}
    for e in events.values():
        data = orjson.loads(e.payload).get("data") or {}
        if isinstance(data.get("booking"), dict):
            bookings[e.id] = data
    client_ids = {
        uuid.UUID(d["booking"]["client_id"])
        for d in bookings.values()
        if d["booking"].get("client_id")
    }
    resource_ids = {uuid.UUID(r) for d in bookings.values() for r in d["booking"]["resource_ids"]}
    client_email = dict(
        (
            await session.execute(
                select(Client.id, Client.email).where(
                    Client.app_id == app_id, Client.id.in_(client_ids)
                )
            )
        ).all()
    )
    resource_email = dict(
        (
            await session.execute(
                select(Resource.id, Resource.email).where(
                    Resource.app_id == app_id, Resource.id.in_(resource_ids)
                )
            )
        ).all()
    )
    tried = [d for d in page if d.attempts]
    last: dict[uuid.UUID, DeliveryAttempt] = {}
    if tried:
        for a in await session.scalars(
            select(DeliveryAttempt).where(
                DeliveryAttempt.endpoint_id.in_(list(rank_of)),
                DeliveryAttempt.at.in_({d.updated_at for d in tried}),
                DeliveryAttempt.delivery_id.in_([d.id for d in tried]),
            )
        ):
            if a.attempt >= getattr(last.get(a.delivery_id), "attempt", 0):
                last[a.delivery_id] = a
    out = []
    for d in page:
        audience = kinds.AUDIENCES[rank_of[d.endpoint_id]]
        event = events[d.event_id]
        data = bookings.get(d.event_id)
        kind, recipients = None, []
        if data is not None:
            booking = data["booking"]
            found = kinds.kind_of(audience, event.type, data.get("action"), booking, moved=True)
            kind = found.name if found is not None else None
            if audience == "customer":
                client = booking.get("client_id")
                address = client_email.get(uuid.UUID(client)) if client else None
                recipients = [address] if address else []
            else:
                owners = (resource_email.get(uuid.UUID(r)) for r in booking["resource_ids"])
                recipients = sorted({a for a in owners if a})
        attempt = last.get(d.id)
        status = email_status(
            d.status,
            attempt.status_code if attempt else None,
            attempt.response_body if attempt else None,
        )
        out.append(
            EmailOut(
                email_id=d.id,
                booking_id=d.booking_id,
                event_id=d.event_id,
                event_type=event.type,
                audience=audience,
                kind=kind,
                recipients=[r for r in recipients if is_one_address(r)],
                status=status,
                attempts=d.attempts,
                last_attempt_at=attempt.at if attempt else None,
                last_status_code=attempt.status_code if attempt else None,
                last_error=_said(status, attempt),
                next_attempt_at=d.next_attempt_at,
                created_at=d.created_at,
                updated_at=d.updated_at,
            )
        )
    return out
