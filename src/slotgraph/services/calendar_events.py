"""The webhook events of a calendar connection (docs/webhooks.md, docs/calendars.md): every
state change of a connection fires one, written through the outbox in the change's own
transaction, like a booking's.

Their `data` carries public fields only: the resource's id (a connection is addressed by its
resource), and what `GET /v1/resources/{id}/calendar` shows anyway. Never a connection's,
target's or delivery's id (internal rows: `GET /v1/events` shows every payload), nor a
password (the URL has no credentials: webhook_schemas.Url refuses them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import CalendarConnection, Event
from slotgraph.domain.availability import rfc3339
from slotgraph.services.outbox import record_event

CONNECTED = "calendar.connected"
DISCONNECTED = "calendar.disconnected"
CONFLICT = "calendar.conflict"
# A removal's end: two names, as a booking's states are (`booking.<status>`), so an endpoint
# may subscribe to the failures alone (`events: ["calendar.removal_failed"]`).
REMOVAL_SUCCEEDED = "calendar.removal_succeeded"
REMOVAL_FAILED = "calendar.removal_failed"
# The pull's status (`ok` / `failing` in GET .../calendar) changing, not each failed sync:
# a calendar retried every 30 s ... 5 min would flood an endpoint.
SYNC_FAILING = "calendar.sync_failing"
SYNC_RECOVERED = "calendar.sync_recovered"


def emit(
    session: AsyncSession,
    conn: CalendarConnection,
    type_: str,
    *,
    now: datetime,
    **data: Any,
) -> Event:
    """The event `type_` of `conn`, added to the caller's transaction."""
    return record_event(
        session,
        app_id=conn.app_id,
        type_=type_,
        booking_id=None,
        data={"resource_id": str(conn.resource_id), **data},
        now=now,
    )


def sync_failed(session: AsyncSession, conn: CalendarConnection, *, now: datetime) -> None:
    """After a failed sync is recorded on `conn`: the first in a row turned its status
    `failing` (from `ok`, or `pending`)."""
    if conn.failures == 1:
        emit(
            session,
            conn,
            SYNC_FAILING,
            now=now,
            error=conn.last_error,
            next_sync_at=rfc3339(conn.next_sync_at),
        )


def sync_succeeded(session: AsyncSession, conn: CalendarConnection, *, now: datetime) -> None:
    """Before a successful sync resets `conn.failures`: failing, it is `ok` again."""
    if conn.failures:
        emit(session, conn, SYNC_RECOVERED, now=now, failures=conn.failures)
