from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from slotgraph.api.deps import SecretKey, Session
from slotgraph.schemas import Page
from slotgraph.services import email_deliveries
from slotgraph.webhook_schemas import EmailOut

router = APIRouter(tags=["emails"])


@router.get("/v1/emails")
async def list_emails(
    principal: SecretKey,
    session: Session,
    booking_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[EmailOut]:
    """The app's emails (or one booking's: `booking_id`), newest first: to whom, which, and
    what became of each (`sent`, `pending`, `failed`, `suppressed` by the inbox's hourly limit,
    `skipped`), with its attempts and its last answer (docs/emails.md)."""
    return await email_deliveries.list_emails(
        session, principal=principal, booking_id=booking_id, limit=limit, cursor=cursor
    )
