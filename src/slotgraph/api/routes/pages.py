"""`/v1/pages`: booking pages (docs/booking-pages.md). Secret key only."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from slotgraph.api.deps import ETag, IfMatch, Now, SecretKey, Session
from slotgraph.page_schemas import PageCreate, PageOut, PageUpdate
from slotgraph.schemas import Page
from slotgraph.services import pages

router = APIRouter(prefix="/v1/pages", tags=["pages"])


@router.post("", status_code=201)
async def create_page(
    body: PageCreate, principal: SecretKey, session: Session, now: Now, response: Response
) -> PageOut:
    """A public booking page at `/book/{slug}`; 409 `slug_taken` if another page has the slug."""
    out = await pages.create_page(session, principal=principal, data=body, now=now)
    response.headers["Location"] = f"/v1/pages/{out.page_id}"
    return out


@router.get("")
async def list_pages(
    principal: SecretKey,
    session: Session,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[PageOut]:
    return await pages.list_pages(session, principal=principal, limit=limit, cursor=cursor)


@router.get("/{page_id}")
async def get_page(
    page_id: uuid.UUID, principal: SecretKey, session: Session, tag: ETag
) -> PageOut:
    out = await pages.get_page(session, principal=principal, page_id=page_id)
    tag(out.version)
    return out


@router.put("/{page_id}")
async def update_page(
    page_id: uuid.UUID,
    body: PageUpdate,
    principal: SecretKey,
    session: Session,
    now: Now,
    if_match: IfMatch,
    tag: ETag,
) -> PageOut:
    """Change the fields sent; the others keep their value."""
    out = await pages.update_page(
        session, principal=principal, page_id=page_id, data=body, now=now, if_match=if_match
    )
    tag(out.version)
    return out


@router.delete("/{page_id}", status_code=204)
async def delete_page(
    page_id: uuid.UUID, principal: SecretKey, session: Session, now: Now, if_match: IfMatch
) -> None:
    """The page is gone and its slug free; bookings made through it keep their manage links."""
    await pages.delete_page(
        session, principal=principal, page_id=page_id, now=now, if_match=if_match
    )
