"""Calendars: the secret feed, free/busy (JSON or text/calendar), CalDAV connections."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from slotgraph.api.deps import AnyKey, Now, SecretKey, Session
from slotgraph.bounds import Instant
from slotgraph.calendar_schemas import (
    BusyInterval,
    CalendarConnect,
    CalendarOut,
    FeedOut,
    FreeBusyOut,
    ResourceFreeBusy,
)
from slotgraph.calendars import ical
from slotgraph.services import calendar_connections, feeds
from slotgraph.settings import Settings

router = APIRouter(tags=["calendars"])

ICAL = "text/calendar; charset=utf-8"


def feed_link(request: Request) -> feeds.FeedLink:
    settings: Settings = request.app.state.settings
    return feeds.FeedLink(settings.public_url or str(request.base_url), _key(request))


FeedLinkDep = Annotated[feeds.FeedLink, Depends(feed_link)]


@router.get(
    "/ical/{token}.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}, 304: {}, 404: {}},
)
async def get_feed(
    token: str,
    session: Session,
    now: Now,
    link: FeedLinkDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """A resource's holding bookings as iCalendar (30 days back, 365 ahead). The token is the
    secret: no API key. Answers 304 when `If-None-Match` names the current ETag."""
    feed = await feeds.render_feed(
        session, token=token, now=now, if_none_match=if_none_match, link=link
    )
    headers = {"ETag": feed.etag, "Cache-Control": "private, max-age=0, must-revalidate"}
    if feed.body is None:
        return Response(status_code=304, headers=headers)
    return Response(feed.body, media_type=ICAL, headers=headers)


@router.post("/v1/resources/{resource_id}/feed/rotate")
async def rotate_feed(
    resource_id: uuid.UUID, principal: SecretKey, session: Session, now: Now, link: FeedLinkDep
) -> FeedOut:
    """A new secret feed URL; the old one answers 404 at once."""
    url = await feeds.rotate_feed(
        session, principal=principal, resource_id=resource_id, link=link, now=now
    )
    return FeedOut(feed_url=url)


def _wants_ical(accept: str | None) -> bool:
    return accept is not None and "text/calendar" in accept.lower()


def _intervals(busy: ical.BusyOf) -> list[BusyInterval]:
    return [BusyInterval(start_time=s, end_time=e) for s, e in busy.busy]


def _ical_answer(
    found: list[ical.BusyOf], start: datetime, end: datetime, now: datetime
) -> Response:
    return Response(ical.freebusy(found, start=start, end=end, stamp=now), media_type=ICAL)


_BOTH: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, "text/calendar": {}}}
}


@router.get(
    "/v1/resources/{resource_id}/freebusy", response_model=ResourceFreeBusy, responses=_BOTH
)
async def resource_freebusy(
    resource_id: uuid.UUID,
    principal: AnyKey,
    session: Session,
    now: Now,
    start: Instant,
    end: Instant,
    accept: Annotated[str | None, Header()] = None,
) -> ResourceFreeBusy | Response:
    """Busy intervals of one resource (bookings with their buffers, and blocks; merged). As an
    RFC 5545 VFREEBUSY when the request accepts `text/calendar`."""
    found = await feeds.freebusy(
        session,
        principal=principal,
        resource_ids=[resource_id],
        start=start,
        end=end,
        now=now,
        single=True,
    )
    if _wants_ical(accept):
        return _ical_answer(found, start, end, now)
    return ResourceFreeBusy(
        resource_id=resource_id, start=start, end=end, busy=_intervals(found[0])
    )


@router.get("/v1/freebusy", response_model=FreeBusyOut, responses=_BOTH)
async def freebusy(
    principal: AnyKey,
    session: Session,
    now: Now,
    resource_ids: Annotated[
        list[uuid.UUID], Query(alias="resource_id", min_length=1, max_length=50)
    ],
    start: Instant,
    end: Instant,
    accept: Annotated[str | None, Header()] = None,
) -> FreeBusyOut | Response:
    """Busy intervals of several resources at once (`resource_id` repeated, at most 50)."""
    found = await feeds.freebusy(
        session, principal=principal, resource_ids=resource_ids, start=start, end=end, now=now
    )
    if _wants_ical(accept):
        return _ical_answer(found, start, end, now)
    return FreeBusyOut(
        start=start,
        end=end,
        resources=[
            ResourceFreeBusy(resource_id=f.resource_id, start=start, end=end, busy=_intervals(f))
            for f in found
        ],
    )


# -- a connected CalDAV calendar ----------------------------------------------------------------


def _key(request: Request) -> str | None:
    settings: Settings = request.app.state.settings
    return settings.encryption_key.get_secret_value() if settings.encryption_key else None


def _allow_private(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    return settings.webhook_allow_private_networks


@router.put("/v1/resources/{resource_id}/calendar")
async def connect_calendar(
    resource_id: uuid.UUID,
    body: CalendarConnect,
    principal: SecretKey,
    session: Session,
    now: Now,
    request: Request,
    response: Response,
) -> CalendarOut:
    """Connect a CalDAV calendar (or replace the connected one). The server is asked first:
    wrong credentials are 422 `calendar_auth_failed`, no calendar there 422
    `calendar_unreachable`. The password is stored encrypted and never shown again."""
    out, created = await calendar_connections.connect(
        session,
        principal=principal,
        resource_id=resource_id,
        data=body,
        now=now,
        encryption_key=_key(request),
        allow_private=_allow_private(request),
    )
    response.status_code = 201 if created else 200
    return out


@router.get("/v1/resources/{resource_id}/calendar")
async def get_calendar(
    resource_id: uuid.UUID, principal: SecretKey, session: Session, now: Now
) -> CalendarOut:
    """The connection's state: last and next sync, the last error, counts, and conflicts."""
    return await calendar_connections.get_calendar(
        session, principal=principal, resource_id=resource_id, now=now
    )


@router.post("/v1/resources/{resource_id}/calendar/sync", status_code=202)
async def sync_calendar(
    resource_id: uuid.UUID, principal: SecretKey, session: Session, now: Now
) -> CalendarOut:
    """Pull now: the worker's next cycle syncs this calendar (GET shows the outcome)."""
    return await calendar_connections.request_sync(
        session, principal=principal, resource_id=resource_id, now=now
    )


@router.delete("/v1/resources/{resource_id}/calendar", status_code=204)
async def disconnect_calendar(
    resource_id: uuid.UUID,
    principal: SecretKey,
    session: Session,
    now: Now,
    request: Request,
    remove_pushed: bool = False,
) -> None:
    """Disconnect. Pulled blocks are removed; pushed events stay in the calendar unless
    `remove_pushed=true` (then the worker deletes them, retried until it can)."""
    await calendar_connections.disconnect(
        session,
        principal=principal,
        resource_id=resource_id,
        now=now,
        remove_pushed=remove_pushed,
        encryption_key=_key(request),
    )
