"""Booking pages: their configuration (`/v1/pages`, secret key) and their public lookup by slug.

A page names resources (one, or a pool booked `any` or `all`), durations, a graph, the form's
fields and the notice rules of its manage links. Slugs are unique on the server among live pages
(a partial unique index; a race for one slug is a 409 `slug_taken` from the database). A deleted
page is archived: `/book/{slug}` is gone, but the bookings made through it keep its rules.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.appsettings import AppSettings
from slotgraph.db.models import App, BookingPage, Resource
from slotgraph.errors import NotFound, ValidationFailed
from slotgraph.page_schemas import PageCreate, PageFields, PageOut, PageUpdate
from slotgraph.schemas import Page
from slotgraph.services.common import (
    IfMatch,
    Principal,
    check_version,
    decode_cursor,
    encode_cursor,
)
from slotgraph.services.projects import SlugTaken


def page_out(p: BookingPage) -> PageOut:
    return PageOut(
        page_id=p.id,
        slug=p.slug,
        url=f"/book/{p.slug}",
        title=p.title,
        description=p.description,
        resource_ids=[uuid.UUID(r) for r in p.resource_ids],
        mode="all" if p.mode == "all" else "any",
        durations=[timedelta(seconds=s) for s in p.durations],
        graph=p.graph,
        fields=PageFields.model_validate(p.fields),
        locale=p.locale,
        timezone=p.timezone,
        min_cancel_notice=p.min_cancel_notice,
        min_reschedule_notice=p.min_reschedule_notice,
        reminder=p.reminder,
        version=p.version,
        created_at=p.created_at,
        updated_at=p.updated_at,
    )


async def _check_resources(session: AsyncSession, app_id: uuid.UUID, ids: list[uuid.UUID]) -> None:
    found = set(
        await session.scalars(
            select(Resource.id).where(
                Resource.app_id == app_id, Resource.id.in_(ids), Resource.archived_at.is_(None)
            )
        )
    )
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise ValidationFailed.one("resource_ids", f"no such resource: {', '.join(missing)}")


async def _flush(session: AsyncSession, slug: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        raise SlugTaken(f"The slug {slug!r} is taken by another page on this server.") from exc


def _apply(page: BookingPage, data: PageCreate | PageUpdate, fields: set[str]) -> None:
    for name in fields:
        value = getattr(data, name)
        if value is None and name not in ("description", "timezone", "reminder"):
            continue  # a required field sent as null keeps its value
        if name == "resource_ids":
            value = [str(i) for i in value]
        elif name == "durations":
            value = [int(d.total_seconds()) for d in value]
        elif name == "fields":
            value = value.model_dump()
        setattr(page, name, value)


async def create_page(
    session: AsyncSession, *, principal: Principal, data: PageCreate, now: datetime
) -> PageOut:
    async with session.begin():
        await _check_resources(session, principal.app_id, data.resource_ids)
        page = BookingPage(
            app_id=principal.app_id, version=1, created_at=now, updated_at=now, archived_at=None
        )
        _apply(page, data, set(PageCreate.model_fields))
        session.add(page)
        await _flush(session, data.slug)
        return page_out(page)


async def _load(
    session: AsyncSession, app_id: uuid.UUID, page_id: uuid.UUID, *, lock: bool = False
) -> BookingPage:
    stmt = select(BookingPage).where(
        BookingPage.app_id == app_id,
        BookingPage.id == page_id,
        BookingPage.archived_at.is_(None),
    )
    page = await session.scalar(stmt.with_for_update() if lock else stmt)
    if page is None:
        raise NotFound(f"No page {page_id}.")
    return page


async def get_page(session: AsyncSession, *, principal: Principal, page_id: uuid.UUID) -> PageOut:
    async with session.begin():
        return page_out(await _load(session, principal.app_id, page_id))


async def list_pages(
    session: AsyncSession, *, principal: Principal, limit: int, cursor: str | None
) -> Page[PageOut]:
    """The app's live pages, oldest first."""
    stmt = select(BookingPage).where(
        BookingPage.app_id == principal.app_id, BookingPage.archived_at.is_(None)
    )
    if cursor is not None:
        at, id_ = decode_cursor(cursor)
        stmt = stmt.where(tuple_(BookingPage.created_at, BookingPage.id) > tuple_(at, id_))
    stmt = stmt.order_by(BookingPage.created_at, BookingPage.id).limit(limit + 1)
    async with session.begin():
        rows = list((await session.scalars(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return Page[PageOut](data=[page_out(p) for p in rows], next_cursor=next_cursor)


async def update_page(
    session: AsyncSession,
    *,
    principal: Principal,
    page_id: uuid.UUID,
    data: PageUpdate,
    now: datetime,
    if_match: IfMatch = None,
) -> PageOut:
    """Change the fields sent; the others keep their value."""
    async with session.begin():
        page = await _load(session, principal.app_id, page_id, lock=True)
        check_version(principal, if_match=if_match, current=page.version)
        if data.resource_ids is not None:
            await _check_resources(session, principal.app_id, data.resource_ids)
        _apply(page, data, data.model_fields_set)
        page.version += 1
        page.updated_at = now
        await _flush(session, page.slug)
        return page_out(page)


async def delete_page(
    session: AsyncSession,
    *,
    principal: Principal,
    page_id: uuid.UUID,
    now: datetime,
    if_match: IfMatch = None,
) -> None:
    """The page disappears (its slug is free again); its bookings and their links stay."""
    async with session.begin():
        page = await _load(session, principal.app_id, page_id, lock=True)
        check_version(principal, if_match=if_match, current=page.version)
        page.archived_at = now
        page.updated_at = now


# -- the public side (web/): a page by its slug, without a key ------------------------------------


@dataclass(frozen=True)
class ResourceInfo:
    resource_id: uuid.UUID
    name: str
    timezone: str


@dataclass(frozen=True)
class PublicPage:
    """A live page as a visitor sees it, with what the web side needs around it."""

    page: PageOut
    app_id: uuid.UUID
    settings: AppSettings  # the app's: allowed_origins are the page's frame-ancestors
    resources: list[ResourceInfo]  # the page's live resources, in the page's order
    # The booking a manage link is moving (services/page_manage.py): its own time is free to it.
    moving: uuid.UUID | None = None

    @property
    def zone(self) -> str:
        """The page's default zone: its own, or its first resource's."""
        if self.page.timezone:
            return self.page.timezone
        return self.resources[0].timezone if self.resources else "UTC"

    @property
    def resource_zones(self) -> list[str]:
        return list(dict.fromkeys(r.timezone for r in self.resources))

    def principal(self) -> Principal:
        """The visitor acts like the app's public key (rules apply, no past starts); no key
        of the app was used, so the history names no key."""
        return Principal(app_id=self.app_id, key_id=None, kind="public", settings=self.settings)

    def tz(self, name: str | None) -> ZoneInfo:
        return ZoneInfo(name or self.zone)


async def public_view(session: AsyncSession, page: BookingPage | None, what: str) -> PublicPage:
    """The page as a visitor sees it (404 if None), inside the caller's transaction."""
    if page is None:
        raise NotFound(f"There is no booking page {what}.")
    app = await session.get(App, page.app_id)
    assert app is not None
    ids = [uuid.UUID(r) for r in page.resource_ids]
    rows = (
        await session.execute(
            select(Resource.id, Resource.name, Resource.timezone).where(
                Resource.app_id == page.app_id,
                Resource.id.in_(ids),
                Resource.archived_at.is_(None),
            )
        )
    ).all()
    by_id = {r.id: ResourceInfo(r.id, r.name, r.timezone) for r in rows}
    return PublicPage(
        page=page_out(page),
        app_id=page.app_id,
        settings=AppSettings.model_validate(app.settings or {}),
        resources=[by_id[i] for i in ids if i in by_id],
    )


async def public_page(session: AsyncSession, *, slug: str) -> PublicPage:
    """The live page at `/book/{slug}` (404 if none)."""
    async with session.begin():
        page = await session.scalar(
            select(BookingPage).where(BookingPage.slug == slug, BookingPage.archived_at.is_(None))
        )
        return await public_view(session, page, repr(slug))


async def page_of_booking(session: AsyncSession, *, page_id: uuid.UUID) -> PublicPage:
    """The page a booking was made through, even if it was deleted since (its rules stay)."""
    async with session.begin():
        page = await session.get(BookingPage, page_id)
        return await public_view(session, page, str(page_id))
