"""The delivery pipeline's hot statements, built once with parameters.

The worker claims and records many times a second. Building a statement with aliases costs
more CPU than running it (SQLAlchemy adapts every column of an alias on each build: about two
thirds of a claim's CPU when it was built per call), so each is built here once and run on the
session's connection (Core, not the ORM's execution path) with its values as parameters.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime

from sqlalchemy import (
    Insert,
    Integer,
    Select,
    String,
    Update,
    bindparam,
    exists,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import aliased

from slotgraph.db.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from slotgraph.db.models.base import table_of
from slotgraph.db.types import UTCDateTime


@functools.cache
def take_due() -> Update:
    """Lease up to `limit` due deliveries to `worker` until `until`, counting the attempt, in one
    UPDATE ... RETURNING: due at `now`, not leased (or the lease ran out), the target enabled,
    and no earlier pending delivery of the same booking to the same target (the order per
    booking). PostgreSQL locks the picked rows with SKIP LOCKED, so workers never pick the same
    row; SQLite has one writer at a time."""
    due, earlier = aliased(Delivery), aliased(Delivery)
    now = bindparam("now", type_=UTCDateTime)
    pick = (
        select(due.id)
        .join(WebhookEndpoint, WebhookEndpoint.id == due.endpoint_id)
        .where(
            due.status == "pending",
            due.next_attempt_at <= now,
            or_(due.locked_until.is_(None), due.locked_until < now),
            WebhookEndpoint.enabled.is_(True),
            WebhookEndpoint.deleted_at.is_(None),
            ~exists().where(
                earlier.endpoint_id == due.endpoint_id,
                earlier.booking_id == due.booking_id,
                earlier.event_seq < due.event_seq,
                earlier.status == "pending",
            ),
        )
        .order_by(due.next_attempt_at, due.event_seq)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True, of=due)
    )
    return (
        update(table_of(Delivery))
        .where(Delivery.id.in_(pick))
        .values(
            attempts=Delivery.attempts + 1,
            locked_until=bindparam("until", type_=UTCDateTime),
            locked_by=bindparam("worker", type_=String),
            updated_at=now,
        )
        .returning(
            Delivery.id,
            Delivery.attempts,
            Delivery.event_id,
            Delivery.endpoint_id,
            Delivery.next_attempt_at,
            Delivery.event_seq,
        )
    )


@functools.cache
def payloads() -> Select[uuid.UUID, str, str | None]:
    """The events `ids`: id, payload, request id."""
    return select(Event.id, Event.payload, Event.request_id).where(
        Event.id.in_(bindparam("ids", expanding=True))
    )


@functools.cache
def addresses() -> Select[uuid.UUID, str, str, str | None, datetime | None, str, uuid.UUID | None]:
    """The targets `ids`: where and how to send (the secrets as stored; domain/webhooks.py
    says which of them sign now)."""
    e = WebhookEndpoint
    return select(
        e.id,
        e.url,
        e.secret,
        e.previous_secret,
        e.previous_secret_expires_at,
        e.format,
        e.calendar_id,
    ).where(e.id.in_(bindparam("ids", expanding=True)))


@functools.cache
def settle_succeeded() -> Update:
    """Succeeded: the deliveries `pairs` (id, attempt) still leased by `worker`; returns ids."""
    return (
        update(table_of(Delivery))
        .where(
            Delivery.locked_by == bindparam("worker", type_=String),
            tuple_(Delivery.id, Delivery.attempts).in_(bindparam("pairs", expanding=True)),
        )
        .values(
            status="succeeded",
            next_attempt_at=None,
            locked_until=None,
            locked_by=None,
            updated_at=bindparam("now", type_=UTCDateTime),
        )
        .returning(Delivery.id)
    )


@functools.cache
def ended_streaks() -> Update:
    """A success ends its target's failing streak: the targets `ids` that were failing."""
    return (
        update(table_of(WebhookEndpoint))
        .where(
            WebhookEndpoint.id.in_(bindparam("ids", expanding=True)),
            WebhookEndpoint.failing_since.is_not(None),
        )
        .values(failing_since=None, last_success_at=bindparam("now", type_=UTCDateTime))
    )


@functools.cache
def log_attempts() -> Insert:
    return insert(table_of(DeliveryAttempt))
