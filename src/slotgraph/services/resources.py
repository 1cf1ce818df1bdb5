"""Resources: things that can be booked."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db import queries
from slotgraph.db.models import BookingHold, CalendarConnection, Resource, ResourceBlock
from slotgraph.domain.rules import payment_overdue
from slotgraph.errors import LimitReached, NotFound, ResourceInUse
from slotgraph.schemas import (
    BlockCreate,
    BlockCreated,
    BlockOut,
    Page,
    ResourceCreate,
    ResourceOut,
    ResourceUpdate,
)
from slotgraph.services import access
from slotgraph.services.common import (
    IfMatch,
    Principal,
    check_version,
    decode_cursor,
    encode_cursor,
)
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
            **_columns(data.model_dump(mode="json"), data.model_dump()),
        )
        session.add(resource)
        await session.flush()
        return resource_out(resource)


async def get_resource(
    session: AsyncSession, *, principal: Principal, resource_id: uuid.UUID
) -> ResourceOut:
    async with session.begin():
        row = await load_resource(session, principal.app_id, resource_id)
        if not access.sees_resource(principal, archived=row.archived_at is not None):
            raise NotFound(f"No resource {resource_id}.")
        return access.resource_answer(principal, resource_out(row))


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
    access.check_include_archived(principal, include_archived)
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
    data = [access.resource_answer(principal, resource_out(r)) for r in rows]
    return Page[ResourceOut](data=data, next_cursor=next_cursor)


async def update_resource(
    session: AsyncSession,
    *,
    principal: Principal,
    resource_id: uuid.UUID,
    data: ResourceUpdate,
    now: datetime,
    if_match: IfMatch = None,
) -> ResourceOut:
    async with session.begin():
        resource = await load_resource(session, principal.app_id, resource_id, lock=True)
        check_version(principal, if_match=if_match, current=resource.version)
        values = _columns(
            data.model_dump(mode="json", exclude_unset=True), data.model_dump(exclude_unset=True)
        )
        for field, value in values.items():
            if field in ("name", "timezone", "meta", "feed_shows_details") and value is None:
                continue  # required fields: null means "leave as is"
            setattr(resource, field, value)
        resource.updated_at = now
        resource.version += 1
        return resource_out(resource)


def _columns(as_json: dict[str, Any], as_python: dict[str, Any]) -> dict[str, Any]:
    """Column values: JSON columns from the JSON form (dates as text), the rest as Python."""
    return {
        k: as_json[k] if k in ("exceptions", "weekly_hours") else v for k, v in as_python.items()
    }


# Live blocks a resource holds from each source: made through the API (`create_block` refuses
# one more), and pulled from its connected calendar (a resource has at most one; the sync keeps
# the nearest, services/calendar_pulled.py). Every availability search over the resource reads
# them; before 2026-12-01 the API's were unbounded (a secret key, or a leaked one, could add
# millions, and every search of the resource, the public key's too, read them all).
MAX_BLOCKS = 50_000
MAX_BLOCKS_LISTED = 1_000  # a page of GET .../blocks, its default and its most


async def _room_for_a_block(session: AsyncSession, resource_id: uuid.UUID) -> None:
    """LimitReached if the resource holds `MAX_BLOCKS` live blocks made through the API. Call
    it with the resource locked (every writer of its holds locks it first; SQLite's writers
    take turns), so two creates at once count one after the other."""
    count = await session.scalar(
        select(func.count()).where(  # ix_resource_blocks_own_live (migration 0022)
            ResourceBlock.resource_id == resource_id,
            ResourceBlock.calendar_id.is_(None),
            ResourceBlock.deleted_at.is_(None),
        )
    )
    count = count or 0
    if count >= MAX_BLOCKS:
        # A resource may hold more than the cap, made before it.
        delete = "one" if count == MAX_BLOCKS else f"{count - MAX_BLOCKS + 1:,}"
        raise LimitReached(
            f"This resource has {count:,} blocks and may have at most {MAX_BLOCKS:,}; delete "
            f"{delete} first (those that have ended too: GET its blocks with ?to= now)."
        )


async def create_block(
    session: AsyncSession,
    *,
    principal: Principal,
    resource_id: uuid.UUID,
    data: BlockCreate,
    now: datetime,
) -> BlockCreated:
    """Busy time from outside the engine (time off, a synced calendar, maintenance): always kept.

    Blocks may overlap blocks and bookings; no booking may be placed over one afterwards (the
    database refuses it, ADR 0007). The resource row is locked first, as every writer of holds
    locks it, so `conflicts` is exactly the holding bookings that overlap the block (their time
    or buffers) at commit. Nothing is changed on them: the owner decides. A resource holds at
    most `MAX_BLOCKS` of them (409 limit_reached).
    """
    async with session.begin():
        resource = await load_resource(session, principal.app_id, resource_id)
        await queries.lock_resources(session, principal.app_id, [resource.id], hold=True)
        await _room_for_a_block(session, resource.id)
        block = ResourceBlock(
            app_id=principal.app_id,
            resource_id=resource.id,
            start_time=data.start_time,
            end_time=data.end_time,
            reason=data.reason,
            created_at=now,
        )
        session.add(block)
        await session.flush()
        session.add(block_hold(block))
        await session.flush()
        conflicts = await bookings_under(
            session, resource.id, block.start_time, block.end_time, now=now
        )
        return BlockCreated(**block_out(block).model_dump(), conflicts=conflicts)


async def bookings_under(
    session: AsyncSession, resource_id: uuid.UUID, start: datetime, end: datetime, *, now: datetime
) -> list[uuid.UUID]:
    """The holding bookings a block over [start, end) conflicts with (their time or buffers)."""
    overlapping = await queries.overlapping_holds(session, resource_id, start, end)
    return sorted(
        {
            row.id
            for row in overlapping
            if row.id is not None  # (the block's own hold, and other blocks)
            # a payment hold past its deadline holds nothing (it times out when next met)
            and not payment_overdue(status=row.status, payment_due_at=row.payment_due_at, now=now)
        }
    )


def block_exists() -> ColumnElement[bool]:
    """A block not deleted, nor pulled by a calendar disconnected: those stop holding at the
    disconnect, and the worker marks them deleted soon after, in batches
    (calendar_removals.clear_disconnected)."""
    being_let_go = select(CalendarConnection.id).where(
        CalendarConnection.disconnected_at.is_not(None)
    )
    return and_(
        ResourceBlock.deleted_at.is_(None),
        or_(
            ResourceBlock.calendar_id.is_(None),
            ResourceBlock.calendar_id.not_in(being_let_go.scalar_subquery()),
        ),
    )


async def list_blocks(
    session: AsyncSession,
    *,
    principal: Principal,
    resource_id: uuid.UUID,
    from_: datetime | None,
    to: datetime | None,
    limit: int = MAX_BLOCKS_LISTED,
    cursor: str | None = None,
) -> Page[BlockOut]:
    """A page of the resource's blocks (its own and its calendar's), by start time, and the
    cursor of the next. Before 2026-12-01 the first 1,000 were the whole answer, with nothing
    to say so or to read on: a resource may hold 50,000 of each kind."""
    stmt = select(ResourceBlock).where(ResourceBlock.resource_id == resource_id, block_exists())
    if from_ is not None:
        stmt = stmt.where(ResourceBlock.end_time > from_)
    if to is not None:
        stmt = stmt.where(ResourceBlock.start_time < to)
    if cursor is not None:
        at, id_ = decode_cursor(cursor)
        stmt = stmt.where(tuple_(ResourceBlock.start_time, ResourceBlock.id) > tuple_(at, id_))
    stmt = stmt.order_by(ResourceBlock.start_time, ResourceBlock.id).limit(limit + 1)
    async with session.begin():
        await load_resource(session, principal.app_id, resource_id)
        rows = list((await session.scalars(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].start_time, rows[-1].id) if more else None
    return Page[BlockOut](data=[block_out(b) for b in rows], next_cursor=next_cursor)


async def delete_block(
    session: AsyncSession,
    *,
    principal: Principal,
    resource_id: uuid.UUID,
    block_id: uuid.UUID,
    now: datetime,
) -> None:
    """The time is free again (the block row stays, marked deleted)."""
    async with session.begin():
        await load_resource(session, principal.app_id, resource_id)
        block = await session.scalar(
            select(ResourceBlock).where(
                ResourceBlock.id == block_id,
                ResourceBlock.resource_id == resource_id,
                block_exists(),
            )
        )
        if block is None:
            raise NotFound(f"No block {block_id}.")
        await remove_blocks(session, [block.id], now=now)


def block_hold(block: ResourceBlock) -> BookingHold:
    """What a block holds (its id must be flushed): its resource over its own time, no buffers,
    active while the block exists. Write it in the transaction that writes the block, after
    locking the resource (ADR 0007)."""
    return BookingHold(
        block_id=block.id,
        resource_id=block.resource_id,
        start_time=block.start_time,
        end_time=block.end_time,
        active=True,
    )


# Ids a statement carries: PostgreSQL takes at most 32,767 parameters, and a sync may remove a
# connection's 50,000 blocks at once (a full sync that finds them gone, or nearer ones in).
REMOVE_BATCH = 1_000


async def remove_blocks(session: AsyncSession, ids: Sequence[uuid.UUID], *, now: datetime) -> None:
    """Delete blocks (the rows stay, marked deleted): their holds stop holding, the time is free.
    The session's loaded blocks are not updated in Python (synchronize_session=False): the ORM's
    default evaluated each batch's IN against every object in the session, and a full sync that
    finds 33,000 objects gone (all loaded) spent 100-360 s of the worker's CPU in it."""
    for at in range(0, len(ids), REMOVE_BATCH):
        batch = ids[at : at + REMOVE_BATCH]
        await session.execute(
            update(ResourceBlock)
            .where(ResourceBlock.id.in_(batch))
            .values(deleted_at=now)
            .execution_options(synchronize_session=False)
        )
        await session.execute(
            update(BookingHold)
            .where(BookingHold.block_id.in_(batch))
            .values(active=False)
            .execution_options(synchronize_session=False)
        )


def block_out(b: ResourceBlock) -> BlockOut:
    return BlockOut(
        block_id=b.id,
        resource_id=b.resource_id,
        start_time=b.start_time,
        end_time=b.end_time,
        reason=b.reason,
        created_at=b.created_at,
    )


async def archive_resource(
    session: AsyncSession,
    *,
    principal: Principal,
    resource_id: uuid.UUID,
    now: datetime,
    if_match: IfMatch = None,
) -> ResourceOut:
    """Archive (never erase). Refused while any booking holds the resource."""
    async with session.begin():
        resource = await load_resource(session, principal.app_id, resource_id, lock=True)
        check_version(principal, if_match=if_match, current=resource.version)
        held = await session.scalar(
            select(
                exists().where(
                    BookingHold.resource_id == resource.id,
                    BookingHold.active.is_(True),
                    BookingHold.booking_id.is_not(None),
                )
            )
        )
        if held:
            raise ResourceInUse(
                "The resource has bookings that hold it; cancel or complete them first."
            )
        if resource.archived_at is None:
            resource.archived_at = now
            resource.updated_at = now
            resource.version += 1
        return resource_out(resource)
