"""Clients: who books."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import Client
from slotgraph.errors import ClientExists, NotFound
from slotgraph.schemas import ClientCreate, ClientOut, ClientUpdate, Customer, Page
from slotgraph.services.common import (
    IfMatch,
    Principal,
    check_version,
    decode_cursor,
    encode_cursor,
)
from slotgraph.services.views import client_out


async def load_client(
    session: AsyncSession, app_id: uuid.UUID, client_id: uuid.UUID, *, lock: bool = False
) -> Client:
    stmt = select(Client).where(Client.id == client_id, Client.app_id == app_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    client = await session.scalar(stmt)
    if client is None:
        raise NotFound(f"No client {client_id}.")
    return client


async def _email_taken(
    session: AsyncSession, app_id: uuid.UUID, email: str, exclude: uuid.UUID | None = None
) -> uuid.UUID | None:
    stmt = select(Client.id).where(Client.app_id == app_id, Client.email == email)
    if exclude is not None:
        stmt = stmt.where(Client.id != exclude)
    return await session.scalar(stmt)


async def create_client(
    session: AsyncSession, *, principal: Principal, data: ClientCreate, now: datetime
) -> ClientOut:
    async with session.begin():
        if data.email and (other := await _email_taken(session, principal.app_id, data.email)):
            raise ClientExists(f"Client {other} has this email.", client_id=str(other))
        client = Client(
            app_id=principal.app_id, created_at=now, updated_at=now, **data.model_dump()
        )
        session.add(client)
        try:
            await session.flush()
        except IntegrityError as exc:  # a concurrent request created it first
            raise ClientExists("A client with this email was created just now.") from exc
        return client_out(client)


async def find_or_create_customer(
    session: AsyncSession, *, app_id: uuid.UUID, customer: Customer, now: datetime
) -> Client:
    """The client with this email, created if new. Runs inside the caller's transaction."""
    stmt = select(Client).where(Client.app_id == app_id, Client.email == customer.email)
    found = await session.scalar(stmt)
    if found is not None:
        return found
    client = Client(app_id=app_id, created_at=now, updated_at=now, meta={}, **customer.model_dump())
    try:
        async with session.begin_nested():
            session.add(client)
    except IntegrityError:  # created concurrently: the savepoint rolled back, use theirs
        found = await session.scalar(stmt)
        if found is None:
            raise
        return found
    return client


async def get_client(
    session: AsyncSession, *, principal: Principal, client_id: uuid.UUID
) -> ClientOut:
    async with session.begin():
        return client_out(await load_client(session, principal.app_id, client_id))


async def list_clients(
    session: AsyncSession,
    *,
    principal: Principal,
    email: str | None,
    limit: int,
    cursor: str | None,
) -> Page[ClientOut]:
    stmt = select(Client).where(Client.app_id == principal.app_id)
    if email is not None:
        stmt = stmt.where(Client.email == email.strip().lower())
    if cursor is not None:
        at, id_ = decode_cursor(cursor)
        stmt = stmt.where(tuple_(Client.created_at, Client.id) > tuple_(at, id_))
    stmt = stmt.order_by(Client.created_at, Client.id).limit(limit + 1)
    async with session.begin():
        rows = list((await session.scalars(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return Page[ClientOut](data=[client_out(c) for c in rows], next_cursor=next_cursor)


async def update_client(
    session: AsyncSession,
    *,
    principal: Principal,
    client_id: uuid.UUID,
    data: ClientUpdate,
    now: datetime,
    if_match: IfMatch = None,
) -> ClientOut:
    async with session.begin():
        client = await load_client(session, principal.app_id, client_id, lock=True)
        check_version(principal, if_match=if_match, current=client.version)
        changes = data.model_dump(exclude_unset=True)
        email = changes.get("email")
        if email and (other := await _email_taken(session, principal.app_id, email, client.id)):
            raise ClientExists(f"Client {other} has this email.", client_id=str(other))
        for field, value in changes.items():
            if field in ("name", "meta") and value is None:
                continue
            setattr(client, field, value)
        client.updated_at = now
        client.version += 1
        try:
            await session.flush()
        except IntegrityError as exc:
            raise ClientExists("A client with this email was created just now.") from exc
        return client_out(client)
