from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from slotgraph.api.deps import ETag, IfMatch, Now, SecretKey, Session
from slotgraph.schemas import ClientCreate, ClientOut, ClientUpdate, Page
from slotgraph.services import clients

router = APIRouter(prefix="/v1/clients", tags=["clients"])


@router.post("", status_code=201)
async def create_client(
    body: ClientCreate, principal: SecretKey, session: Session, now: Now, response: Response
) -> ClientOut:
    out = await clients.create_client(session, principal=principal, data=body, now=now)
    response.headers["Location"] = f"/v1/clients/{out.client_id}"
    return out


@router.get("")
async def list_clients(
    principal: SecretKey,
    session: Session,
    email: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[ClientOut]:
    return await clients.list_clients(
        session, principal=principal, email=email, limit=limit, cursor=cursor
    )


@router.get("/{client_id}")
async def get_client(
    client_id: uuid.UUID, principal: SecretKey, session: Session, tag: ETag
) -> ClientOut:
    out = await clients.get_client(session, principal=principal, client_id=client_id)
    tag(out.version)
    return out


@router.put("/{client_id}")
async def update_client(
    client_id: uuid.UUID,
    body: ClientUpdate,
    principal: SecretKey,
    session: Session,
    now: Now,
    if_match: IfMatch,
    tag: ETag,
) -> ClientOut:
    out = await clients.update_client(
        session, principal=principal, client_id=client_id, data=body, now=now, if_match=if_match
    )
    tag(out.version)
    return out
