"""Resources: things that can be booked."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import exists, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import BookingHold, Resource
from slotgraph.errors import NotFound, ResourceInUse
from slotgraph.schemas import Page, ResourceCreate, ResourceOut, ResourceUpdate
from slotgraph.services.common import Principal, decode_cursor, encode_cursor
from slotgraph.services.views import resource_out


async def load_resource(
    session: AsyncSession, app_id: uuid.UUID, resource_id: uuid.UUID, *, lock: bool = False
) -> Resource:
    stmt = select(Resource).where(Resource.id == resource_id, Resource.app_id == app_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    resource = await session.scalar(stmt)
    if resource is None:
        raise NotFound(f"No resource {resource_id}.")
    return resource


async def create_resource(
    session: AsyncSession, *, principal: Principal, data: ResourceCreate, now: datetime
) -> ResourceOut:
    async with session.begin():
        resource = Resource(
            app_id=principal.app_id,
            created_at=now,
            updated_at=now,
            **data.model_dump(),
        )
        session.add(resource)
        await session.flush()
        return resource_out(resource)


async def get_resource(
    session: AsyncSession, *, principal: Principal, resource_id: uuid.UUID
) -> ResourceOut:
    async with session.begin():
        return resource_out(await load_resource(session, principal.app_id, resource_id))


async def list_resources(
    session: AsyncSession,
    *,
    principal: Principal,
    kind: str | None,
    location: str | None,
    include_archived: bool,
    limit: int,
    cursor: str | None,
) -> Page[ResourceOut]:
    stmt = select(Resource).where(Resource.app_id == principal.app_id)
    if kind is not None:
        stmt = stmt.where(Resource.kind == kind)
    if location is not None:
        stmt = stmt.where(Resource.location == location)
    if not include_archived:
        stmt = stmt.where(Resource.archived_at.is_(None))
    if cursor is not None:
        at, id_ = decode_cursor(cursor)
        stmt = stmt.where(tuple_(Resource.created_at, Resource.id) > tuple_(at, id_))
    stmt = stmt.order_by(Resource.created_at, Resource.id).limit(limit + 1)
    async with session.begin():
        rows = list((await session.scalars(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return Page[ResourceOut](data=[resource_out(r) for r in rows], next_cursor=next_cursor)


async def update_resource(
    session: AsyncSession,
    *,
    principal: Principal,
    resource_id: uuid.UUID,
    data: ResourceUpdate,
    now: datetime,
) -> ResourceOut:
    async with session.begin():
        resource = await load_resource(session, principal.app_id, resource_id, lock=True)
        for field, value in data.model_dump(exclude_unset=True).items():
            if field in ("name", "timezone", "meta") and value is None:
                continue  # required fields: null means "leave as is"
            setattr(resource, field, value)
        resource.updated_at = now
        return resource_out(resource)


async def archive_resource(
    session: AsyncSession, *, principal: Principal, resource_id: uuid.UUID, now: datetime
) -> ResourceOut:
    """Archive (never erase). Refused while any booking holds the resource."""
    async with session.begin():
        resource = await load_resource(session, principal.app_id, resource_id, lock=True)
        held = await session.scalar(
            select(
                exists().where(BookingHold.resource_id == resource.id, BookingHold.active.is_(True))
            )
        )
        if held:
            raise ResourceInUse(
                "The resource has bookings that hold it; cancel or complete them first."
            )
        if resource.archived_at is None:
            resource.archived_at = now
            resource.updated_at = now
        return resource_out(resource)
