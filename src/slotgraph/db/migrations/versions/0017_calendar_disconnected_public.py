"""calendar.disconnected public: the internal id out of the events already written

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 19:30:00
"""

from __future__ import annotations

import uuid

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_TIE = sa.text(
    "UPDATE webhook_endpoints SET calendar_id = ("
    " SELECT e.calendar_id FROM deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
    " WHERE d.event_id = :event AND e.calendar_id IS NOT NULL)"
    " WHERE id = :target"
).bindparams(sa.bindparam("target", type_=sa.Uuid()))


def upgrade() -> None:
    # `calendar.disconnected` carried `push_target_id` (an internal delivery target's id), which
    # GET /v1/events showed; the event is a webhook event now, with public fields only
    # (services/calendar_removals.py). A removal still pending finds the pushes it waits for
    # by its connection instead: the stopped push target is tied to the hidden connection again.
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, payload FROM events WHERE type = 'calendar.disconnected'")
    ).all()
    for event_id, payload in rows:
        body = orjson.loads(payload)
        data = body.get("data")
        if not isinstance(data, dict) or "push_target_id" not in data:
            continue
        target = data.pop("push_target_id")
        if target is not None:
            bind.execute(_TIE, {"event": event_id, "target": uuid.UUID(target)})
        bind.execute(
            sa.text("UPDATE events SET payload = :payload WHERE id = :event"),
            {"payload": orjson.dumps(body).decode(), "event": event_id},
        )


def downgrade() -> None:
    # The code before this held one target per connection: stopped push targets let go again.
    # (The events keep their public payload: a removal without the id waits for no push.)
    op.execute(
        "UPDATE webhook_endpoints SET calendar_id = NULL"
        " WHERE calendar_id IS NOT NULL AND deleted_at IS NOT NULL"
    )
