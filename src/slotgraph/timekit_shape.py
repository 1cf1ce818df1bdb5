"""A booking in Timekit's shape: what `GET /v2/bookings/:id` answers and what a `timekit` webhook
(webhooks/timekit.py) posts. Here, outside the ways in, so the delivery machinery (services/
deliveries.py) renders it without importing the /v2 adapter (tests/test_import_direction.py);
Timekit's fields -> slotgraph's is api/timekit/booking_table.py's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from slotgraph.schemas import BookingOut
from slotgraph.services.paged import Related

RESERVED = "timekit"  # the key in a booking's meta that holds Timekit-only fields


def iso_in(at: datetime | None, zone: ZoneInfo) -> str | None:
    """A timestamp as Timekit answers it: ISO 8601 with the offset of the wanted zone."""
    return None if at is None else at.astimezone(zone).isoformat()


def booking(
    b: BookingOut, related: Related, zone: ZoneInfo, include: frozenset[str]
) -> dict[str, Any]:
    """slotgraph's booking in Timekit's shape; `include` adds the related parts asked for."""
    tk: dict[str, Any] = b.meta.get(RESERVED, {}) if isinstance(b.meta.get(RESERVED), dict) else {}
    resource = related.resources.get(b.resource_id)
    out: dict[str, Any] = {
        "id": str(b.booking_id),
        "graph": b.graph,
        "state": b.status,
        "completed": b.completed,
        "available_actions": b.available_actions,
        "possible_actions": b.available_actions,
        "created_at": iso_in(b.created_at, zone),
        "updated_at": iso_in(b.updated_at, zone),
        "meta": {k: v for k, v in b.meta.items() if k != RESERVED},
        "resource": {"id": str(b.resource_id), "name": resource.name if resource else None},
    }
    if isinstance(tk.get("project_id"), str) and tk["project_id"]:
        out["project"] = {"id": tk["project_id"]}
    if b.owner_booking_id is not None:
        out["related"] = {"owner_booking_id": str(b.owner_booking_id)}
    event = {
        "start": iso_in(b.start_time, zone),
        "end": iso_in(b.end_time, zone),
        "what": _text(tk.get("what")),
        "where": _text(tk.get("where")),
        "description": b.details or "",
    }
    if "attributes" in include:
        attributes: dict[str, Any] = {"event_info": event}
        if b.max_seats is not None:
            attributes["group_booking"] = {
                "max_seats": b.max_seats,
                "current_seats": b.seats_taken,
                "seats_left": b.seats_left,
            }
        if b.payment_due_at is not None or b.payment_id is not None:
            attributes["payment"] = {
                "due_at": iso_in(b.payment_due_at, zone),
                "payment_id": b.payment_id,
            }
        out["attributes"] = attributes
    if "event" in include:
        out["event"] = {"id": str(b.booking_id), **event, "all_day": False}
    if "customers" in include:
        client = related.clients.get(b.client_id) if b.client_id else None
        out["customers"] = (
            [
                {
                    **_extra(tk.get("customer")),
                    "id": str(client.client_id),
                    "name": client.name,
                    "email": client.email,
                    "phone": client.phone or "",
                    "timezone": client.timezone,
                }
            ]
            if client
            else []
        )
    if "user" in include and resource is not None:
        out["user"] = {
            "id": str(resource.resource_id),
            "name": resource.name,
            "email": resource.email,
            "timezone": resource.timezone,
        }
    return out


# `meta.timekit` is written by the /v2 adapter, but a booking's meta is the caller's JSON: /v1
# (either key) may write anything under it. What is read from it is what the adapter writes; a
# value of another type is left out, never a 500 for every /v2 list and timekit webhook it is in.


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _extra(value: object) -> dict[str, Any]:
    """A customer's fields the adapter keeps (`voip`, `comment`, a widget's own), under the
    client's own: a booking's meta never passes for its client's id, name or email."""
    return value if isinstance(value, dict) else {}
