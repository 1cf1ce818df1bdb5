"""Counts an app's customer emails per inbox where every worker sees them: the database, at send
time, in the email channel's own transaction (ADR 0020; the rule: domain/email_quota.py).

Concurrency: the inbox's row is made if missing and locked in one upsert (PostgreSQL), so two
workers sending to one inbox take turns; on SQLite every write transaction is `BEGIN IMMEDIATE`
already (db/engine.py), one at a time.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import EmailQuota, table_of
from slotgraph.domain.email_quota import WINDOW, admit, mailbox_key

log = logging.getLogger("slotgraph.mail")
_TABLE = table_of(EmailQuota)

# The delivery record of an email the limit held back (its answer body; docs/emails.md).
SUPPRESSED = "suppressed: the inbox had {} customer emails from this app in the last hour"


async def take(
    session: AsyncSession,
    *,
    app_id: uuid.UUID,
    address: str,
    delivery_id: uuid.UUID,
    now: datetime,
    limit: int,
) -> bool:
    """Count one customer email of `app_id` to `address` (True: send it), or refuse it: over
    `limit` in the sliding hour, logged once a window. In the caller's transaction; `limit` 0
    counts nothing."""
    if limit <= 0:
        return True
    key = mailbox_key(address)
    # One round trip: the row, made if missing, and locked (PostgreSQL: ON CONFLICT DO UPDATE
    # locks it and returns its newest version, a turn behind a concurrent sender).
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(_TABLE).values(app_id=app_id, address=key, sends=[], suppressed=0, updated_at=now)
    row = (
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[_TABLE.c.app_id, _TABLE.c.address],
                set_={"updated_at": stmt.excluded.updated_at},
            ).returning(_TABLE.c.sends, _TABLE.c.warned_at, _TABLE.c.suppressed)
        )
    ).one()
    decision = admit(list(row.sends), delivery_id=str(delivery_id), now=now, limit=limit)
    changes: dict[str, object] = {"sends": decision.sends}
    if not decision.admitted:
        changes["suppressed"] = row.suppressed + 1
        if row.warned_at is None or row.warned_at <= now - WINDOW:
            changes["warned_at"] = now
            # No address: logs carry no personal data (docs/emails.md).
            log.warning(
                "app %s: an inbox had %d customer emails in the last hour; the rest this hour "
                "are not sent (the first: delivery %s)",
                app_id,
                limit,
                delivery_id,
            )
    await session.execute(
        update(_TABLE).where(_TABLE.c.app_id == app_id, _TABLE.c.address == key).values(**changes)
    )
    return decision.admitted


async def prune(session: AsyncSession, *, now: datetime) -> None:
    """Forget inboxes that got no email for an hour (the worker's chores call this): what is
    kept is at most the inboxes emailed in the last hour, each at most the limit's sends."""
    async with session.begin():
        await session.execute(delete(EmailQuota).where(EmailQuota.updated_at <= now - WINDOW))
