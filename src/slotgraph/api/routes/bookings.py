from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Response

from slotgraph.api.deps import AnyKey, ETag, IfMatch, Now, SecretKey, SecretOrCustomer, Session
from slotgraph.api.idempotency import answers_in_its_write
from slotgraph.api.plain_query import PlainQueryRoute
from slotgraph.bounds import Instant
from slotgraph.schemas import (
    ActionBody,
    BookingCreate,
    BookingCreated,
    BookingOut,
    BookingUpdate,
    GraphName,
    Latest,
    Page,
    StatusName,
    TransitionOut,
)
from slotgraph.services.bookings import changing, creating, reading
from slotgraph.services.idempotency import Stored

router = APIRouter(prefix="/v1/bookings", tags=["bookings"])


def _created(out: BookingCreated, body: str) -> Stored:
    """The answer to a create (`body`: `out` as JSON), made once: sent, and stored for an
    Idempotency-Key's retries (the create stores it in its own write: api/idempotency.py)."""
    return Stored(
        status_code=201,
        headers={"content-type": "application/json", "location": f"/v1/bookings/{out.booking_id}"},
        body=body,
    )


@answers_in_its_write
async def create_booking(
    body: BookingCreate, principal: AnyKey, session: Session, now: Now
) -> Response:
    """Create a booking. The public key may do this too (a booking widget in a browser).
    A booking with a client gets a customer token, shown once here as `customer_token`."""
    answer = await creating.create_answered(
        session, principal=principal, data=body, now=now, answer=_created
    )
    return Response(answer.body, answer.status_code, answer.headers)


# A plain create (an API key, a JSON object valid for BookingCreate) is answered without
# FastAPI's dependency solving and second parse of the body; any other goes through it as
# before (api/plain_query.py).
router.add_api_route(
    "",
    create_booking,
    methods=["POST"],
    status_code=201,
    response_model=BookingCreated,
    route_class_override=PlainQueryRoute,
)


@router.get("")
async def list_bookings(
    principal: SecretKey,
    session: Session,
    now: Now,
    resource_id: uuid.UUID | None = None,
    client_id: uuid.UUID | None = None,
    owner_booking_id: uuid.UUID | None = None,
    status: Annotated[list[StatusName] | None, Query()] = None,
    graph: Annotated[list[GraphName] | None, Query()] = None,
    from_: Annotated[Instant | None, Query(alias="from")] = None,
    to: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[BookingOut]:
    """Bookings overlapping [from, to), sorted by start time; follow `next_cursor` for more."""
    return await reading.list_bookings(
        session,
        principal=principal,
        now=now,
        resource_id=resource_id,
        client_id=client_id,
        owner_booking_id=owner_booking_id,
        status=status or (),
        graph=graph or (),
        from_=from_,
        to=to,
        limit=limit,
        cursor=cursor,
    )


@router.get("/{booking_id}")
async def get_booking(
    booking_id: uuid.UUID, principal: SecretOrCustomer, session: Session, now: Now, tag: ETag
) -> BookingOut:
    out = await reading.get_booking(session, principal=principal, booking_id=booking_id, now=now)
    tag(out.version)
    return out


@router.put("/{booking_id}")
async def modify_booking(
    booking_id: uuid.UUID,
    body: BookingUpdate,
    principal: SecretOrCustomer,
    session: Session,
    now: Now,
    if_match: IfMatch,
    tag: ETag,
) -> BookingOut:
    """Change time, resource, details, meta or locale. A new time or resource re-checks the slot.
    The booking's customer token may change its time only (a reschedule)."""
    out = await changing.modify_booking(
        session, principal=principal, booking_id=booking_id, data=body, now=now, if_match=if_match
    )
    tag(out.version)
    return out


@router.delete("/{booking_id}")
async def cancel_booking(
    booking_id: uuid.UUID, principal: SecretKey, session: Session, now: Now, if_match: IfMatch
) -> BookingOut:
    """Cancel (the `cancel` action). The booking stays, with its history; the slot is freed."""
    return await changing.apply_action(
        session,
        principal=principal,
        booking_id=booking_id,
        action="cancel",
        body=ActionBody(),
        now=now,
        if_match=if_match,
    )


@router.get("/{booking_id}/history")
async def booking_history(
    booking_id: uuid.UUID,
    principal: SecretKey,
    session: Session,
    before: Annotated[
        uuid.UUID | None,
        Query(description="A `change_id`: the latest 1,000 changes made before that one."),
    ] = None,
) -> Latest[TransitionOut]:
    """The latest 1,000 changes (before the change `before`, if given), oldest first;
    `older_left_out` says whether there were more, and `next` is the path that reads them."""
    rows, left_out = await reading.booking_history(
        session, principal=principal, booking_id=booking_id, before=before
    )
    older = f"/v1/bookings/{booking_id}/history?before={rows[0].change_id}" if left_out else None
    return Latest[TransitionOut](data=rows, older_left_out=left_out, next=older)


@router.put("/{booking_id}/{action}")
async def apply_action(
    booking_id: uuid.UUID,
    action: str,
    principal: SecretOrCustomer,
    session: Session,
    now: Now,
    if_match: IfMatch,
    tag: ETag,
    body: Annotated[ActionBody | None, Body()] = None,
) -> BookingOut:
    """Apply a graph action (`confirm`, `pay`, `cancel_by_customer`, ...). 409 if not allowed.
    The booking's customer token may apply `cancel_by_customer` only."""
    out = await changing.apply_action(
        session,
        principal=principal,
        booking_id=booking_id,
        action=action,
        body=body or ActionBody(),
        now=now,
        if_match=if_match,
    )
    tag(out.version)
    return out
