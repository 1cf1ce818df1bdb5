from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from slotgraph import metrics
from slotgraph.api import slot_json
from slotgraph.api.deps import AnyKey, Now, Session
from slotgraph.api.plain_query import PlainQueryRoute
from slotgraph.bounds import Instant, SlotStep
from slotgraph.schemas import GroupSlot, Listed, Slot, TimeZone
from slotgraph.services import availability

router = APIRouter(prefix="/v1/availability", tags=["availability"])

ResourceIds = Annotated[list[uuid.UUID], Query(alias="resource_id", min_length=1, max_length=200)]


async def slot_query(
    resource_ids: ResourceIds,
    start: Instant,
    end: Instant,
    duration: timedelta,
    step: SlotStep | None = None,
    mode: Literal["any", "all"] = "any",
    timezone: TimeZone = "UTC",
) -> availability.SlotSearch:
    """The query parameters `/v1/availability` and `/v1/availability/dates` share."""
    return availability.SlotSearch(resource_ids, start, end, duration, step, mode, timezone)


SlotQuery = Annotated[availability.SlotSearch, Depends(slot_query)]
Limit = Annotated[int, Query(ge=1, le=availability.MAX_LIMIT)]


async def search(
    principal: AnyKey,
    session: Session,
    now: Now,
    query: SlotQuery,
    limit: Limit = availability.DEFAULT_LIMIT,
) -> Response:
    """Free slots of `duration` starting in [start, end), sorted by start.

    `mode=any`: a slot is listed when at least one resource is free (`resource_ids` lists the free
    ones, in the order given); `mode=all`: only when every one is. `step` overrides the resources'
    `slot_step` grids. Times carry the offset of `timezone`. `limit=1` is the next free slot.
    """
    with metrics.timed(metrics.get().availability_duration):
        found = await availability.find(
            session, principal=principal, query=query, limit=limit, now=now
        )
    # The shape is `Listed[Slot]` (declared below for the docs), written from the plain slots:
    # an answer may list 100,000 resource ids, and pydantic took longer than finding them.
    return Response(slot_json.render(found), media_type="application/json")


# A plain query (the common case) is answered without FastAPI's per-request machinery; any
# other goes through it as before (api/plain_query.py).
router.add_api_route(
    "", search, methods=["GET"], response_model=Listed[Slot], route_class_override=PlainQueryRoute
)


@router.get("/dates")
async def dates(principal: AnyKey, session: Session, now: Now, query: SlotQuery) -> Listed[date]:
    """The local dates (in `timezone`) with at least one free slot: for a month view."""
    with metrics.timed(metrics.get().availability_duration):
        data = await availability.dates(session, principal=principal, query=query, now=now)
    return Listed[date](data=data)


@router.get("/groups")
async def groups(
    principal: AnyKey,
    session: Session,
    now: Now,
    resource_ids: ResourceIds,
    start: Instant,
    end: Instant,
) -> Listed[GroupSlot]:
    """group_owner classes starting in the window that have seats left and take bookings now."""
    data = await availability.groups(
        session, principal=principal, resource_ids=resource_ids, start=start, end=end, now=now
    )
    return Listed[GroupSlot](data=data)
