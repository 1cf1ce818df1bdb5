"""The email targets (`webhook_endpoints` rows of format `email:customer` and `email:owner`):
made with each app (`new_targets`), and which events each wants (`wanted`, the fan-out's filter,
services/fanout.py). Composing and sending one email is channel.py's."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.appsettings import AppSettings
from slotgraph.db.models import App, Client, Event, Resource, WebhookEndpoint, new_id
from slotgraph.notifications import kinds
from slotgraph.services.outbox import OutboxEvent, Target


def new_targets(app_id: uuid.UUID, now: datetime) -> list[WebhookEndpoint]:
    """An app's email targets, made with the app (services/apps.py; migration 0012)."""
    return [
        WebhookEndpoint(
            id=new_id(),
            app_id=app_id,
            url=fmt,
            events=["booking.*"],
            format=fmt,
            description="emails",
            enabled=True,
            secret="mail_" + uuid.uuid4().hex,  # unused: nothing is signed
            created_at=now,
            version=1,
            updated_at=now,
        )
        for fmt in kinds.FORMATS
    ]


def _moved(booking: dict[str, Any], before: dict[str, Any] | None) -> bool:
    if before is None:
        return False
    return any(booking.get(k) != before.get(k) for k in ("start_time", "end_time", "resource_ids"))


@dataclass(frozen=True)
class _Parsed:
    booking: dict[str, Any]
    action: str | None
    moved: bool


def wanted_without_reads(
    targets: Sequence[Target], events: Sequence[OutboxEvent]
) -> Callable[[Target, OutboxEvent], bool] | None:
    """`wanted`'s filter where it reads nothing: no email target among `targets`, or no
    event's booking asks for emails; None where it must read (the fan-out on SQLite runs
    without a session where it need not: services/fanout.py)."""
    return _without_reads(targets, events)[0]


def _without_reads(
    targets: Sequence[Target], events: Sequence[OutboxEvent]
) -> tuple[Callable[[Target, OutboxEvent], bool] | None, dict[uuid.UUID, _Parsed]]:
    """`wanted_without_reads`, and the events it parsed (`_parsed`; none where no email target
    is among `targets`), so that `wanted` parses each payload once."""
    audience_of = {t.id for t in targets if t.format in kinds.FORMATS}
    if not audience_of:
        return (lambda target, event: True), {}
    parsed = _parsed(events)
    if not parsed:  # no booking asks for emails: no lookups (the rule is in `wants`)
        return (lambda target, event: target.id not in audience_of), parsed
    return None, parsed


def _parsed(events: Sequence[OutboxEvent]) -> dict[uuid.UUID, _Parsed]:
    """The events whose booking asks for emails, their booking and action."""
    parsed: dict[uuid.UUID, _Parsed] = {}
    for e in events:
        if e.booking_id is None or not e.type.startswith("booking."):
            continue
        data = orjson.loads(e.payload)["data"]
        booking = data.get("booking")
        if isinstance(booking, dict) and booking.get("notify"):
            parsed[e.id] = _Parsed(booking, data.get("action"), False)
    return parsed


async def wanted(
    session: AsyncSession, targets: Sequence[Target], events: Sequence[OutboxEvent]
) -> Callable[[Target, OutboxEvent], bool]:
    """The dispatch filter for email targets (other targets: always true): the app sends this
    audience email, the booking says `notify`, there is an address, and the event is one that
    kinds.py sends an email for."""
    plain, parsed = _without_reads(targets, events)
    if plain is not None:
        return plain
    audience_of = {t.id: kinds.AUDIENCE_OF[t.format] for t in targets if t.format in kinds.FORMATS}
    updated = [e for e in events if e.type == "booking.updated" and e.id in parsed]
    for e in updated:
        before = await session.scalar(
            select(Event.payload)
            .where(Event.booking_id == e.booking_id, Event.seq < e.seq)
            .order_by(Event.seq.desc())
            .limit(1)
        )
        old = orjson.loads(before)["data"].get("booking") if before else None
        p = parsed[e.id]
        parsed[e.id] = _Parsed(p.booking, p.action, _moved(p.booking, old))
    settings = {
        app_id: AppSettings.model_validate(raw or {}).notifications
        for app_id, raw in await session.execute(
            select(App.id, App.settings).where(App.id.in_({t.app_id for t in targets}))
        )
    }
    client_ids = {p.booking.get("client_id") for p in parsed.values()} - {None}
    with_email = set(
        await session.scalars(
            select(Client.id).where(
                Client.id.in_([uuid.UUID(c) for c in client_ids]), Client.email.is_not(None)
            )
        )
    )
    resource_ids = {r for p in parsed.values() for r in p.booking.get("resource_ids", [])}
    owners = set(
        await session.scalars(
            select(Resource.id).where(
                Resource.id.in_([uuid.UUID(r) for r in resource_ids]), Resource.email.is_not(None)
            )
        )
    )

    def wants(target: Target, event: OutboxEvent) -> bool:
        audience = audience_of.get(target.id)
        if audience is None:
            return True
        p = parsed.get(event.id)
        app = settings.get(target.app_id)
        if p is None or app is None or not getattr(app, audience) or not p.booking.get("notify"):
            return False
        b = p.booking
        if audience == "customer":
            client = b.get("client_id")
            return (
                client is not None
                and uuid.UUID(client) in with_email
                and kinds.kind_of(audience, event.type, p.action, b, moved=p.moved) is not None
            )
        return any(uuid.UUID(r) in owners for r in b.get("resource_ids", [])) and (
            kinds.kind_of(audience, event.type, p.action, b, moved=p.moved) is not None
        )

    return wants
