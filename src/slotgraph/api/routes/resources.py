from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from slotgraph.api.deps import AnyKey, ETag, IfMatch, Now, SecretKey, Session
from slotgraph.api.routes.calendars import FeedLinkDep
from slotgraph.bounds import Instant
from slotgraph.schemas import (
    AvailabilityRules,
    AvailabilityRulesOut,
    BlockCreate,
    BlockCreated,
    BlockOut,
    Page,
    ResourceCreate,
    ResourceOut,
    ResourceUpdate,
)
from slotgraph.services import feeds, resources

router = APIRouter(prefix="/v1/resources", tags=["resources"])


@router.post("", status_code=201)
async def create_resource(
    body: ResourceCreate, principal: SecretKey, session: Session, now: Now, response: Response
) -> ResourceOut:
    out = await resources.create_resource(session, principal=principal, data=body, now=now)
    response.headers["Location"] = f"/v1/resources/{out.resource_id}"
    return out


@router.get("")
async def list_resources(
    principal: AnyKey,
    session: Session,
    kind: str | None = None,
    location: str | None = None,
    include_archived: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[ResourceOut]:
    return await resources.list_resources(
        session,
        principal=principal,
        kind=kind,
        location=location,
        include_archived=include_archived,
        limit=limit,
        cursor=cursor,
    )


@router.get("/{resource_id}")
async def get_resource(
    resource_id: uuid.UUID, principal: AnyKey, session: Session, tag: ETag, link: FeedLinkDep
) -> ResourceOut:
    """The resource; with the secret key, also its secret `feed_url` (docs/calendars.md)."""
    if principal.kind == "secret":
        out = await feeds.resource_with_feed(
            session, principal=principal, resource_id=resource_id, link=link
        )
    else:
        out = await resources.get_resource(session, principal=principal, resource_id=resource_id)
    tag(out.version)
    return out


@router.put("/{resource_id}")
async def update_resource(
    resource_id: uuid.UUID,
    body: ResourceUpdate,
    principal: SecretKey,
    session: Session,
    now: Now,
    if_match: IfMatch,
    tag: ETag,
) -> ResourceOut:
    out = await resources.update_resource(
        session, principal=principal, resource_id=resource_id, data=body, now=now, if_match=if_match
    )
    tag(out.version)
    return out


@router.delete("/{resource_id}")
async def archive_resource(
    resource_id: uuid.UUID, principal: SecretKey, session: Session, now: Now, if_match: IfMatch
) -> ResourceOut:
    """Archive the resource (it is never erased). 409 while bookings hold it."""
    return await resources.archive_resource(
        session, principal=principal, resource_id=resource_id, now=now, if_match=if_match
    )


@router.get("/{resource_id}/availability")
async def get_rules(
    resource_id: uuid.UUID, principal: AnyKey, session: Session
) -> AvailabilityRulesOut:
    """The resource's availability rules (also part of the resource itself)."""
    out = await resources.get_resource(session, principal=principal, resource_id=resource_id)
    return AvailabilityRulesOut(**out.model_dump(include=set(AvailabilityRulesOut.model_fields)))


@router.put("/{resource_id}/availability")
async def put_rules(
    resource_id: uuid.UUID,
    body: AvailabilityRules,
    principal: SecretKey,
    session: Session,
    now: Now,
    if_match: IfMatch,
    tag: ETag,
) -> AvailabilityRulesOut:
    """Change rules; fields left out keep their value. Existing bookings are not re-checked."""
    data = ResourceUpdate.model_validate(body.model_dump(exclude_unset=True))
    out = await resources.update_resource(
        session, principal=principal, resource_id=resource_id, data=data, now=now, if_match=if_match
    )
    tag(out.version)
    return AvailabilityRulesOut(**out.model_dump(include=set(AvailabilityRulesOut.model_fields)))


@router.post("/{resource_id}/blocks", status_code=201)
async def create_block(
    resource_id: uuid.UUID, body: BlockCreate, principal: SecretKey, session: Session, now: Now
) -> BlockCreated:
    """Busy time (time off, maintenance): always 201, even over other blocks or bookings.

    No booking may be placed over it afterwards. `conflicts` lists the holding bookings it
    overlaps (their time or buffers); nothing is changed on them.
    """
    return await resources.create_block(
        session, principal=principal, resource_id=resource_id, data=body, now=now
    )


@router.get("/{resource_id}/blocks")
async def list_blocks(
    resource_id: uuid.UUID,
    principal: SecretKey,
    session: Session,
    from_: Annotated[Instant | None, Query(alias="from")] = None,
    to: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=resources.MAX_BLOCKS_LISTED)] = (
        resources.MAX_BLOCKS_LISTED
    ),
    cursor: str | None = None,
) -> Page[BlockOut]:
    """The resource's blocks that overlap [from, to), by start time; `next_cursor` reads on."""
    return await resources.list_blocks(
        session,
        principal=principal,
        resource_id=resource_id,
        from_=from_,
        to=to,
        limit=limit,
        cursor=cursor,
    )


@router.delete("/{resource_id}/blocks/{block_id}", status_code=204)
async def delete_block(
    resource_id: uuid.UUID, block_id: uuid.UUID, principal: SecretKey, session: Session, now: Now
) -> None:
    await resources.delete_block(
        session, principal=principal, resource_id=resource_id, block_id=block_id, now=now
    )
