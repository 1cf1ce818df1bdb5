"""Secret iCalendar feeds and free/busy (docs/calendars.md)."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.bounds import window_error
from slotgraph.calendars import ical, keys
from slotgraph.db.models import Booking, BookingHold, Resource
from slotgraph.domain.availability import merge
from slotgraph.errors import NotFound, ValidationFailed, none_match
from slotgraph.schemas import ResourceOut
from slotgraph.services import access
from slotgraph.services.busy import load_busy, load_resources
from slotgraph.services.common import Principal
from slotgraph.services.instance import instance_secret
from slotgraph.services.resources import load_resource
from slotgraph.services.views import resource_out

FEED_PAST = timedelta(days=30)
FEED_AHEAD = timedelta(days=365)
FEED_MAX_EVENTS = 20_000
REFRESH_MINUTES = 15


@dataclass(frozen=True, slots=True)
class FeedLink:
    """Where feed URLs point: the server's public address, and the configured key (if any)."""

    base_url: str
    encryption_key: str | None

    def url(self, token: str) -> str:
        return f"{self.base_url.rstrip('/')}/ical/{token}.ics"


async def _feed_key(session: AsyncSession, link: FeedLink) -> bytes:
    secret = ""
    if not keys.configured(link.encryption_key):
        secret = await instance_secret(session, "feed")
    return keys.feed_key(link.encryption_key, secret)


async def _current_token(session: AsyncSession, resource: Resource, link: FeedLink) -> str:
    """The resource's feed token; its hash is (re)stored when it is new or the key changed."""
    token = keys.feed_token(await _feed_key(session, link), resource.id, resource.feed_generation)
    digest = keys.token_hash(token)
    if resource.feed_token_hash != digest:
        resource.feed_token_hash = digest
    return token


async def resource_with_feed(
    session: AsyncSession, *, principal: Principal, resource_id: uuid.UUID, link: FeedLink
) -> ResourceOut:
    """The resource as the secret key sees it: with its `feed_url`."""
    async with session.begin():
        resource = await load_resource(session, principal.app_id, resource_id)
        token = await _current_token(session, resource, link)
        return resource_out(resource).model_copy(update={"feed_url": link.url(token)})


async def rotate_feed(
    session: AsyncSession,
    *,
    principal: Principal,
    resource_id: uuid.UUID,
    link: FeedLink,
    now: datetime,
) -> str:
    """A new feed URL; the old one is 404 from this commit on. Returns the new URL."""
    async with session.begin():
        resource = await load_resource(session, principal.app_id, resource_id, lock=True)
        resource.feed_generation += 1
        resource.version += 1  # feed_url changed: the resource's ETag changes with it
        resource.updated_at = now
        return link.url(await _current_token(session, resource, link))


@dataclass(frozen=True, slots=True)
class Feed:
    etag: str
    body: bytes | None  # None: the caller's copy (If-None-Match) is current


def _feed_window(now: datetime) -> tuple[datetime, datetime]:
    """Day-aligned (UTC), so the feed's content and ETag stay put within a day."""
    midnight = datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)
    return midnight - FEED_PAST, midnight + FEED_AHEAD + timedelta(days=1)


def _holding_bookings(
    resource_id: uuid.UUID, start: datetime, end: datetime
) -> list[ColumnElement[bool]]:
    return [
        BookingHold.resource_id == resource_id,
        BookingHold.active.is_(True),
        Booking.start_time < end,
        Booking.end_time > start,
    ]


async def render_feed(
    session: AsyncSession, *, token: str, now: datetime, if_none_match: str | None, link: FeedLink
) -> Feed:
    """The feed behind a token, if it is the one the current key derives. The ETag comes from
    one aggregate query, so a client whose copy is current costs no rendering."""
    if not keys.TOKEN_SHAPE.match(token):
        raise NotFound("No such feed.")
    start, end = _feed_window(now)
    async with session.begin():
        resource = await session.scalar(
            select(Resource).where(Resource.feed_token_hash == keys.token_hash(token))
        )
        # The stored hash is the token's when feed_url was last shown; a new encryption key
        # (the old one leaked, with a copy of the database) changes every token, but the hash
        # only when the secret key reads the resource again: until then the old URL still
        # answered, where docs/calendars.md promised 404.
        if resource is None or not hmac.compare_digest(
            token,
            keys.feed_token(await _feed_key(session, link), resource.id, resource.feed_generation),
        ):
            raise NotFound("No such feed.")
        where = _holding_bookings(resource.id, start, end)
        joined = (
            select(
                func.count(),
                func.max(Booking.updated_at),
                func.coalesce(func.sum(Booking.version), 0),
            )
            .select_from(BookingHold)
            .join(Booking, Booking.id == BookingHold.booking_id)
        )
        count, last, versions = (await session.execute(joined.where(*where))).one()
        state = (
            f"{resource.id}|{resource.feed_generation}|{resource.updated_at.isoformat()}|"
            f"{start.date()}|{count}|{last.isoformat() if last else ''}|{versions}"
        )
        etag = '"' + hashlib.sha256(state.encode()).hexdigest()[:32] + '"'
        if none_match(etag, if_none_match):  # before: W/"..." and * never matched
            return Feed(etag, None)
        rows = (
            await session.execute(
                select(
                    Booking.id,
                    Booking.start_time,
                    Booking.end_time,
                    Booking.status,
                    Booking.version,
                    Booking.details,
                    Booking.created_at,
                    Booking.updated_at,
                )
                .select_from(BookingHold)
                .join(Booking, Booking.id == BookingHold.booking_id)
                .where(*where)
                .order_by(Booking.start_time, Booking.id)
                .limit(FEED_MAX_EVENTS)
            )
        ).all()
    body = ical.feed(
        resource.name,
        (ical.BookingEvent(*row) for row in rows),
        shows_details=resource.feed_shows_details,
        refresh_minutes=REFRESH_MINUTES,
    )
    return Feed(etag, body)


async def freebusy(
    session: AsyncSession,
    *,
    principal: Principal,
    resource_ids: Sequence[uuid.UUID],
    start: datetime,
    end: datetime,
    now: datetime,
    single: bool = False,
) -> list[ical.BusyOf]:
    """Busy intervals per resource: holding bookings (with their buffers) and blocks, merged
    and clipped to [start, end). Overdue payment holds are free, as in availability."""
    if wrong := window_error(start, end):
        raise ValidationFailed.one("end", wrong)
    async with session.begin():
        if single:
            await load_resource(session, principal.app_id, resource_ids[0])  # else 404
        resources = await load_resources(session, principal.app_id, resource_ids)
        busy = await load_busy(session, resources, start, end, now=now)
    out = []
    for r in resources:
        clipped = [(max(s, start), min(e, end)) for s, e in busy[r.id] if s < end and e > start]
        email = access.resource_email(principal, r.email)
        out.append(ical.BusyOf(r.id, email, merge(clipped)))
    return out
