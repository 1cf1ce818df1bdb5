"""The installation's own secrets (`instance_secrets`): made by the migrations, shared by every
process and kept across restarts. `feed` signs feed URLs without SLOTGRAPH_ENCRYPTION_KEY,
`csrf` signs the booking pages' CSRF tokens without SLOTGRAPH_CSRF_SECRET."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from slotgraph.db.models import InstanceSecret


async def instance_secret(session: AsyncSession, name: str) -> str:
    """The secret called `name`, in the caller's transaction. A database that lost it (made
    by a migration) gets a new random one: what it signed stops passing, never to a guessable
    value."""
    value = await session.scalar(select(InstanceSecret.value).where(InstanceSecret.name == name))
    if value is None:
        value = secrets.token_hex(32)
        session.add(InstanceSecret(name=name, value=value))
        await session.flush()
    return value


async def read_instance_secret(sessions: async_sessionmaker[AsyncSession], name: str) -> str:
    """The secret called `name`, in a transaction of its own; when two processes make a lost one
    at once, the one stored first wins for both."""
    for _ in range(2):
        try:
            async with sessions() as session, session.begin():
                return await instance_secret(session, name)
        except IntegrityError:
            continue  # another process stored it first: read theirs
    raise RuntimeError(f"instance secret {name!r} could not be read or stored")
