"""/v2/bookings: create, list, show, actions, group classes, reschedule."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph import timekit_shape
from slotgraph.api.deps import AnyKey, Now, SecretKey, Session
from slotgraph.api.timekit import booking_table, times
from slotgraph.api.timekit.common import Includes, Pages, TimekitInput, Zone, parse, wrap
from slotgraph.domain.graphs import ALL_ACTIONS
from slotgraph.errors import Forbidden, NotFound, ValidationFailed
from slotgraph.schemas import ActionBody, BookingOut, BookingUpdate
from slotgraph.services import paged
from slotgraph.services.bookings import changing, creating, reading
from slotgraph.services.common import Principal
from slotgraph.services.paged import Filters

router = APIRouter(prefix="/bookings", tags=["timekit"])
JsonBody = Annotated[Any, Body()]

# `search=k:v;k2:v2` keys -> how each narrows the search (Timekit's names on the left).
SEARCH_KEYS = (
    "graph",
    "state",
    "resource.id",
    "customer.email",
    "customer.name",
    "project.id",
    "completed",
    "meta.*",
)
_SAFE = re.compile(r"^[\w.@+\- *:/]{1,200}$")
_KEY = re.compile(r"^[\w.]{1,100}$")
MAX_TERMS = 20
Search = Annotated[str | None, Query(max_length=2000)]


def search_filters(search: str | None) -> Filters:
    """Timekit's `search` parameter as Filters; an unknown key is a 422, never ignored."""
    found: dict[str, Any] = {"graphs": [], "states": [], "meta": []}
    parts = [p for p in (search or "").split(";") if p.strip()]
    if len(parts) > MAX_TERMS:
        raise ValidationFailed.one("search", f"at most {MAX_TERMS} key:value pairs")
    for part in parts:
        key, sep, value = part.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not value or not _SAFE.match(value) or not _KEY.match(key):
            raise ValidationFailed.one("search", f"{part!r}: use key:value pairs joined by ;")
        if key == "graph":
            found["graphs"].append(value)
        elif key == "state":
            found["states"].append(value)
        elif key == "resource.id":
            found["resource_id"] = _uuid(value, "search")
        elif key == "customer.email":
            found["customer_email"] = value
        elif key == "customer.name":
            found["customer_name"] = paged.like_pattern(value)
        elif key == "project.id":
            found["meta"].append(((timekit_shape.RESERVED, "project_id"), value))
        elif key == "completed" and value in ("true", "false"):
            found["completed"] = value == "true"
        elif key.startswith("meta.") and len(key) > 5:
            found["meta"].append((tuple(key[5:].split(".")), value))
        else:
            raise ValidationFailed.one(
                "search", f"cannot search by {key!r}; by: {', '.join(SEARCH_KEYS)}"
            )
    return Filters(**found)


def _uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationFailed.one(field, f"{value!r} is not an id") from None


@dataclass(frozen=True)
class Call:
    """What every booking route needs: who calls, a session, the time, how to answer."""

    principal: Principal
    session: AsyncSession
    now: datetime
    zone: ZoneInfo
    include: frozenset[str]

    async def shown(
        self, rows: list[BookingOut], include: frozenset[str] | None = None
    ) -> list[dict[str, Any]]:
        """Bookings in Timekit's shape (two queries for their customers and resources)."""
        rel = await paged.related(self.session, principal=self.principal, bookings=rows)
        parts = self.include if include is None else include
        return [timekit_shape.booking(b, rel, self.zone, parts) for b in rows]

    async def one(self, out: BookingOut) -> dict[str, Any]:
        return wrap((await self.shown([out]))[0])


async def any_call(
    principal: AnyKey, session: Session, now: Now, zone: Zone, include: Includes
) -> Call:
    return Call(principal, session, now, zone, include)


async def secret_call(
    principal: SecretKey, session: Session, now: Now, zone: Zone, include: Includes
) -> Call:
    return Call(principal, session, now, zone, include)


AnyCall = Annotated[Call, Depends(any_call)]
SecretCall = Annotated[Call, Depends(secret_call)]


@router.post("", status_code=201)
async def create_booking(body: JsonBody, call: AnyCall, response: Response) -> dict[str, Any]:
    """Timekit's create; the public (widget) key may do this, as on /v1."""
    data = booking_table.booking_create(body)
    with booking_table.timekit_names():
        out = await creating.create_booking(
            call.session, principal=call.principal, data=data, now=call.now
        )
    response.headers["Location"] = f"/v2/bookings/{out.booking_id}"
    return await call.one(out)


@router.get("")
async def list_bookings(
    request: Request, call: SecretCall, pages: Pages, search: Search = None
) -> dict[str, Any]:
    rows, total = await paged.search_bookings(
        call.session,
        principal=call.principal,
        filters=search_filters(search),
        limit=pages.limit,
        offset=pages.offset,
        now=call.now,
    )
    return pages.envelope(request, await call.shown(rows), total)


@router.get("/groups")
async def list_groups(
    request: Request, call: AnyCall, pages: Pages, search: Search = None
) -> dict[str, Any]:
    """Group classes (group_owner bookings), as the widget lists them. With the public key:
    only classes that take bookings (confirmed, not started), and never their customers."""
    filters = search_filters(search)
    if call.principal.kind != "secret":
        _check_public_search(filters)
    rows, total = await paged.search_bookings(
        call.session,
        principal=call.principal,
        filters=_classes(call, filters),
        limit=pages.limit,
        offset=pages.offset,
        now=call.now,
    )
    shown = await call.shown(rows, _class_parts(call))
    return pages.envelope(request, [_public(call.principal, b) for b in shown], total)


@router.get("/groups/{booking_id}")
async def show_group(booking_id: uuid.UUID, call: AnyCall) -> dict[str, Any]:
    """One class, if the list would show it to this key. Any other id (unknown, not a class,
    a class the key is not shown) is the same 404: an id's existence is not told."""
    rows, _ = await paged.search_bookings(
        call.session,
        principal=call.principal,
        filters=_classes(call, Filters(booking_id=booking_id)),
        limit=1,
        offset=0,
        now=call.now,
    )
    if not rows:
        raise NotFound(f"No group booking {booking_id}.")
    shown = await call.shown(rows, _class_parts(call))
    return wrap(_public(call.principal, shown[0]))


def _classes(call: Call, filters: Filters) -> Filters:
    """`filters` narrowed to the classes (group_owner bookings) `call`'s key is shown: every
    class to the secret key; to the public key those that take bookings (confirmed, not
    started). Both class routes ask this one rule."""
    extra: dict[str, Any] = {"graphs": ["group_owner"]}
    if call.principal.kind != "secret":
        extra |= {"states": ["confirmed"], "starts_after": call.now}
    return Filters(**{**filters.__dict__, **extra})


# What the public key may search classes by: what it is shown of them (never their customers,
# nor their meta but the project's id).
PUBLIC_SEARCH_KEYS = ("graph", "state", "resource.id", "project.id", "completed")


def _check_public_search(filters: Filters) -> None:
    """A search by what the public key is not shown would tell it what it is not shown, one
    guess at a time: `customer.name:A*` spelt out a class's customer, `meta.phone:555...`
    confirmed its private meta. 403 rather than an empty answer: the search is not the key's."""
    hidden = [
        ".".join(path) for path, _ in filters.meta if path != (timekit_shape.RESERVED, "project_id")
    ]
    if filters.customer_email is not None or filters.customer_name is not None or hidden:
        raise Forbidden(
            "The public key searches classes by what it is shown of them: "
            f"{', '.join(PUBLIC_SEARCH_KEYS)}; customers and meta need the secret key."
        )


def _class_parts(call: Call) -> frozenset[str]:
    """A class always shows its attributes (seats); the public key never sees customers."""
    parts = call.include | {"attributes"}
    return parts if call.principal.kind == "secret" else parts - {"customers"}


def _public(principal: Principal, shown: dict[str, Any]) -> dict[str, Any]:
    """What a widget (public) key sees of a class: no customers, no private meta."""
    if principal.kind == "secret":
        return shown
    return {**{k: v for k, v in shown.items() if k != "customers"}, "meta": {}}


@router.get("/{booking_id:uuid}")
async def show_booking(booking_id: uuid.UUID, call: SecretCall) -> dict[str, Any]:
    out = await reading.get_booking(
        call.session, principal=call.principal, booking_id=booking_id, now=call.now
    )
    return await call.one(out)


class ActionInput(TimekitInput):
    message: str | None = None
    payment_id: str | None = None


def action_body(action: str, body: Any) -> ActionBody:
    """`{"<action>": {...}}` (Timekit), or the same fields at the top level."""
    if body is None or body == {}:
        return ActionBody()
    if not isinstance(body, dict):
        raise ValidationFailed.one("body", "a JSON object")
    nested = body.get(action, {})
    flat = {k: v for k, v in body.items() if k != action}
    if not isinstance(nested, dict):
        raise ValidationFailed.one(action, 'an object, e.g. {"message": "..."}')
    given = parse(ActionInput, {**flat, **nested})
    return ActionBody(message=given.message, payment_id=given.payment_id)


@router.put("/{booking_id:uuid}/{action}")
async def apply_action(
    booking_id: uuid.UUID, action: str, call: SecretCall, body: JsonBody = None
) -> dict[str, Any]:
    """Apply a graph action; 409 `invalid_action` (naming the allowed ones) if not allowed now."""
    if action not in ALL_ACTIONS:
        raise NotFound(f"No action {action!r}; actions: {', '.join(sorted(ALL_ACTIONS))}.")
    return await _act(call, booking_id, action, action_body(action, body))


@router.delete("/{booking_id:uuid}")
async def delete_booking(booking_id: uuid.UUID, call: SecretCall) -> dict[str, Any]:
    """Nothing is erased: this is the `cancel` action (the booking stays, with its history)."""
    return await _act(call, booking_id, "cancel", ActionBody())


async def _act(call: Call, booking_id: uuid.UUID, action: str, body: ActionBody) -> dict[str, Any]:
    out = await changing.apply_action(
        call.session,
        principal=call.principal,
        booking_id=booking_id,
        action=action,
        body=body,
        now=call.now,
    )
    return await call.one(out)


class RescheduleIn(TimekitInput):
    start: str
    end: str
    resource_id: uuid.UUID | None = None
    message: str | None = None


@router.post("/{booking_id:uuid}/reschedule")
@router.post("/{booking_id:uuid}/reschedule/", include_in_schema=False)
async def reschedule(
    booking_id: uuid.UUID, call: SecretCall, body: JsonBody = None
) -> dict[str, Any]:
    """Move a booking to a new time (and resource); the slot is checked again. The booking
    keeps its id (Timekit makes a new one)."""
    tk = parse(RescheduleIn, body)
    start, end = times.each(
        lambda: times.timestamp(tk.start, "start"), lambda: times.timestamp(tk.end, "end")
    )
    data = parse(
        BookingUpdate,
        {"start_time": start, "end_time": end, "resource_id": tk.resource_id},
        {"start_time": "start", "end_time": "end"},
    )
    with booking_table.timekit_names():
        out = await changing.modify_booking(
            call.session, principal=call.principal, booking_id=booking_id, data=data, now=call.now
        )
    return await call.one(out)
