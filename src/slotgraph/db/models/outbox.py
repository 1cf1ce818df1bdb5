"""The outbox and its way out: events, the targets they go to (webhook endpoints, calendar
pushes), one delivery per event and target, and the log of every attempt."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from slotgraph.db.models.base import Base, JSONType, new_id, table_of
from slotgraph.db.types import UTCDateTime


class Event(Base):
    """The outbox: written in the transaction that caused it; payload serialised once, here."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_app_seq", "app_id", "seq"),
        Index("ix_events_booking_seq", "booking_id", "seq"),
    )

    # `seq` orders events (per booking, the order they happened); `id` is the public id.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=new_id)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id"))
    type: Mapped[str] = mapped_column(String(64))
    booking_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bookings.id"))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set at insert: this event's deliveries are written with it (`webhook.test`), so it is
    # not queued for the fan-out. Unset: a trigger queues it in `events_undispatched`
    # (UndispatchedEvent). Before migration 0019 the fan-out set it; since then it leaves the
    # row as written (ADR 0017).
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The X-Request-Id of the request that caused the event (None for the worker's timers).
    request_id: Mapped[str | None] = mapped_column(String(128))


class UndispatchedEvent(Base):
    """The fan-out's queue: one row per event not yet fanned out, put there by a trigger on
    `events` in the event's own transaction (migration 0019) and deleted by the fan-out that
    writes its deliveries. An event row is then written once and never updated: marking it
    dispatched copied the whole row (its payload) and wrote four index entries (ADR 0017)."""

    __tablename__ = "events_undispatched"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    )


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_app", "app_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id"))
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str] | None] = mapped_column(JSONType)  # None: every event
    # "standard" (Standard Webhooks) or "timekit" (Timekit's booking body, x-timekit-signature)
    format: Mapped[str] = mapped_column(String(16), default="standard")
    description: Mapped[str | None] = mapped_column(String(500))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    # The signing secret must be readable to sign; the previous one keeps signing for 24 h.
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)  # the ETag; +1 per change
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set: this target is a connected calendar's push channel, not a webhook (never listed by
    # the webhook API). Its deliveries share the pipeline: lease, order, retries, attempt log.
    calendar_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("calendar_connections.id"))


class Delivery(Base):
    """One event for one endpoint: the unit the worker claims, sends, and retries."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("uq_deliveries_endpoint_event", "endpoint_id", "event_id", unique=True),
        Index(
            "ix_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # a claim while targets are skipped as slow (services/delivery_statements.py)
        Index(
            "ix_deliveries_due_per_target",
            "endpoint_id",
            "next_attempt_at",
            "event_seq",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_deliveries_order",
            "endpoint_id",
            "booking_id",
            "event_seq",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    # No foreign keys here nor in DeliveryAttempt (migration 0018, ADR 0016): only the worker's
    # statements write these rows, from the targets and claims they have just read, and nothing
    # they point at is ever deleted; the checks cost PostgreSQL a quarter of its CPU a delivery.
    app_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    booking_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(16))  # pending | succeeded | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DeliveryAttempt(Base):
    """The log: one row per HTTP attempt, never updated."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_endpoint", "endpoint_id", "at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    delivery_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker_id: Mapped[str] = mapped_column(String(64))


EVENTS = table_of(Event)


class EmailQuota(Base):
    """The customer emails one app sent one inbox in the last hour (domain/email_quota.py,
    ADR 0020): at most the limit's sends a row, and a row unused for an hour is pruned."""

    __tablename__ = "email_quotas"
    __table_args__ = (Index("ix_email_quotas_updated", "updated_at"),)

    app_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # domain/email_quota.py mailbox_key: lower case, no +tag (an address is at most 254)
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    sends: Mapped[list[list[float | str]]] = mapped_column(JSONType)
    # The last "over the limit" log line: one a window (ADR 0020)
    warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    suppressed: Mapped[int] = mapped_column(Integer, default=0)  # since the row was made
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
