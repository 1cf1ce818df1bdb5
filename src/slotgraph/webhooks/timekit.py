"""The `timekit` webhook format: Timekit's booking body, signed with `x-timekit-signature`.

Timekit posts the booking as `GET /bookings/:id` shows it (with its event, attributes and
customers) and signs the raw body: `x-timekit-signature` is the hex HMAC-SHA256 of the body with
the endpoint's secret. Everything else (claims, retries, ordering, the attempt log) is the one
delivery machinery of services/deliveries.py; this module only renders and signs.

The body is rendered when a delivery is claimed, from the event's stored booking plus the
client and resource as they are then: a retry sends the same booking, but a client renamed
meanwhile shows its new name.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import Client, Resource
from slotgraph.schemas import BookingOut
from slotgraph.services.paged import Related
from slotgraph.services.views import client_out, resource_out
from slotgraph.timekit_shape import booking as timekit_booking

FORMAT = "timekit"
INCLUDE = frozenset({"attributes", "event", "customers", "user"})
SIGNATURE_HEADER = "x-timekit-signature"
_UTC = ZoneInfo("UTC")


def signature(secret: str, body: str) -> str:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


def headers(*, msg_id: str, body: str, secrets_: list[str]) -> dict[str, str]:
    """Timekit signs with one secret: the current one (a rotation's old secret does not)."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        SIGNATURE_HEADER: signature(secrets_[0], body),
    }


def _booking(payload: str) -> BookingOut | None:
    data = orjson.loads(payload).get("data")
    if not isinstance(data, dict) or not isinstance(data.get("booking"), dict):
        return None  # not a booking event: Timekit has no shape for it; sent as it is
    try:
        return BookingOut.model_validate(data["booking"])
    except ValidationError:
        return None


async def bodies(session: AsyncSession, payloads: Mapping[uuid.UUID, str]) -> dict[uuid.UUID, str]:
    """Timekit bodies for these events (event id -> stored payload): two queries in all."""
    bookings = {k: b for k, p in payloads.items() if (b := _booking(p)) is not None}
    client_ids = {b.client_id for b in bookings.values() if b.client_id}
    resource_ids = {r for b in bookings.values() for r in b.resource_ids}
    clients: Sequence[Client] = []
    resources: Sequence[Resource] = []
    if client_ids:
        clients = (await session.scalars(select(Client).where(Client.id.in_(client_ids)))).all()
    if resource_ids:
        resources = (
            await session.scalars(select(Resource).where(Resource.id.in_(resource_ids)))
        ).all()
    related = Related(
        clients={c.id: client_out(c) for c in clients},
        resources={r.id: resource_out(r) for r in resources},
    )
    out: dict[uuid.UUID, str] = {}
    for event_id, payload in payloads.items():
        b = bookings.get(event_id)
        if b is None:
            out[event_id] = payload
            continue
        shown: dict[str, Any] = timekit_booking(b, related, _UTC, INCLUDE)
        out[event_id] = orjson.dumps(shown).decode()
    return out
