"""SQLAlchemy models. No relationships: queries are explicit, nothing loads lazily by accident."""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from slotgraph.db.types import Seconds, UTCDateTime
from slotgraph.domain.graphs import PAYMENT_TIMEOUT

JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


_last_v7 = 0


def new_id() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): time-ordered, so ids sort in creation order and index well.

    Strictly increasing within a process: 48 bits of milliseconds, then a 74-bit random tail
    that is bumped instead of redrawn when the clock has not moved on.
    """
    global _last_v7
    ms = time.time_ns() // 1_000_000
    tail = int.from_bytes(os.urandom(10)) >> 6  # 74 random bits
    value = (ms << 74) | tail
    if value <= _last_v7:
        value = _last_v7 + 1
    _last_v7 = value
    ms, tail = value >> 74, value & ((1 << 74) - 1)
    rand_a, rand_b = tail >> 62, tail & ((1 << 62) - 1)
    return uuid.UUID(int=(ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b)


class App(Base):
    __tablename__ = "apps"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # AppSettings (slotgraph/appsettings.py) as JSON; fields left out read as their defaults.
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "secret" | "public"
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings, e.g. "sk_3fa9"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Resource(Base):
    __tablename__ = "resources"
    __table_args__ = (
        Index("ix_resources_app_created", "app_id", "created_at", "id"),
        Index("uq_resources_feed_token_hash", "feed_token_hash", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str | None] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    location: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Availability rules (docs/availability.md). weekly_hours None: open around the clock.
    weekly_hours: Mapped[dict[str, list[list[str]]] | None] = mapped_column(JSONType)
    exceptions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    buffer_before: Mapped[timedelta] = mapped_column(Seconds, default=timedelta(0))
    buffer_after: Mapped[timedelta] = mapped_column(Seconds, default=timedelta(0))
    min_notice: Mapped[timedelta | None] = mapped_column(Seconds)  # None: none (past ok)
    max_advance: Mapped[timedelta | None] = mapped_column(Seconds)
    min_duration: Mapped[timedelta | None] = mapped_column(Seconds)
    max_duration: Mapped[timedelta | None] = mapped_column(Seconds)
    slot_step: Mapped[timedelta] = mapped_column(Seconds, default=timedelta(minutes=15))
    # The secret iCalendar feed (docs/calendars.md): the token is derived from the generation
    # and a key; only its SHA-256 is stored, to find the resource. Rotating bumps the generation.
    feed_generation: Mapped[int] = mapped_column(Integer, default=1)
    feed_token_hash: Mapped[str | None] = mapped_column(String(64))
    feed_shows_details: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)  # the ETag; +1 per change
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InstanceSecret(Base):
    """Secrets of this installation, made by the migrations (the feed key when no
    SLOTGRAPH_ENCRYPTION_KEY is set)."""

    __tablename__ = "instance_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class Client(Base):
    __tablename__ = "clients"
    __table_args__ = (
        Index("ix_clients_app_created", "app_id", "created_at", "id"),
        # One client per email within an app: the inline `customer` of a booking finds it by email.
        Index(
            "uq_clients_app_email",
            "app_id",
            "email",
            unique=True,
            postgresql_where=text("email IS NOT NULL"),
            sqlite_where=text("email IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id"))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    timezone: Mapped[str | None] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)  # the ETag; +1 per change
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


_WAITING_FOR_PAYMENT = f"status = '{PAYMENT_TIMEOUT.state}' AND {PAYMENT_TIMEOUT.at} IS NOT NULL"


class Booking(Base):
    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("end_time > start_time", name="span"),
        CheckConstraint("seats_taken >= 0 AND seats_taken <= max_seats", name="seats"),
        Index("ix_bookings_app_start", "app_id", "start_time", "id"),
        Index("ix_bookings_resource_start", "resource_id", "start_time"),
        Index("ix_bookings_client", "client_id"),
        Index("ix_bookings_owner", "owner_booking_id"),
        Index(  # the payment holds still waiting: what payment_overdue_sql looks through
            "ix_bookings_payment_due",
            PAYMENT_TIMEOUT.at,
            postgresql_where=text(_WAITING_FOR_PAYMENT),
            sqlite_where=text(_WAITING_FOR_PAYMENT),
        ),
        Index(
            "ix_bookings_requests_start",
            "start_time",
            postgresql_where=text("status = 'tentative' AND graph = 'confirm_decline'"),
            sqlite_where=text("status = 'tentative' AND graph = 'confirm_decline'"),
        ),
        Index(
            "ix_bookings_to_complete",
            "end_time",
            postgresql_where=text("status IN ('confirmed', 'paid') AND auto_complete"),
            sqlite_where=text("status IN ('confirmed', 'paid') AND auto_complete"),
        ),
        Index(  # the reminders still to send (notifications/reminders.py)
            "ix_bookings_remind_at",
            "remind_at",
            postgresql_where=text("remind_at IS NOT NULL"),
            sqlite_where=text("remind_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id"))
    graph: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resources.id"))
    # Every resource held when there are several (assign "all"); None: just resource_id.
    # Kept in step with the booking's BookingHold rows by services/bookings/lifecycle.py.
    resource_ids: Mapped[list[str] | None] = mapped_column(JSONType)
    client_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clients.id"))
    start_time: Mapped[datetime] = mapped_column(UTCDateTime)
    end_time: Mapped[datetime] = mapped_column(UTCDateTime)
    details: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # instant_payment / group_customer_payment
    payment_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    payment_id: Mapped[str | None] = mapped_column(String(200))
    # group_owner: the class; seats_taken is a guarded counter under the row lock
    max_seats: Mapped[int | None] = mapped_column(Integer)
    seats_taken: Mapped[int | None] = mapped_column(Integer)
    min_cancel_time: Mapped[timedelta | None] = mapped_column(Seconds)
    min_booking_time: Mapped[timedelta | None] = mapped_column(Seconds)
    max_booking_time: Mapped[timedelta | None] = mapped_column(Seconds)
    # group_customer*: the class this seat belongs to
    owner_booking_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bookings.id"))
    # The worker completes confirmed/paid bookings one hour after their end unless this is false.
    auto_complete: Mapped[bool] = mapped_column(Boolean, default=True)
    # The booking page it was made through (its notice rules apply to the manage link).
    page_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("booking_pages.id"))
    # Emails (notifications/): false turns them off for this booking. `reminder`: how long
    # before the start the customer is reminded; `remind_at` is that moment until it is sent.
    notify: Mapped[bool] = mapped_column(Boolean, default=True)
    reminder: Mapped[timedelta | None] = mapped_column(Seconds)
    remind_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BookingToken(Base):
    """A secret link to one booking, stored as its SHA-256 only (services/customer_tokens.py).

    `customer` tokens (`ct_...`) open the booking for its customer (the manage link, the API);
    `owner` tokens (`ot_...`) let the resource's owner confirm or decline a request. A booking
    may have several: the create answer's, and one per email that carries a link (ADR 0009).
    """

    __tablename__ = "booking_tokens"
    __table_args__ = (Index("ix_booking_tokens_booking", "booking_id", "kind"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id"))
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id"))
    kind: Mapped[str] = mapped_column(String(16))  # "customer" | "owner"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BookingHold(Base):
    """What a booking (or a block of time off) holds: one row per (booking, resource).

    The range includes the booking's buffers. `active` is true while the booking is in a holding
    state (or the block exists). Blocks may overlap anything; a booking's active hold may overlap
    neither another booking's nor a block's (ADR 0007, migration 0006): on PostgreSQL an
    exclusion constraint over booking holds, and on both backends a trigger that refuses a
    booking hold over a block, after locking the resource row as the block's trigger does.
    """

    __tablename__ = "booking_holds"
    __table_args__ = (
        CheckConstraint("end_time > start_time", name="span"),
        CheckConstraint("(booking_id IS NULL) <> (block_id IS NULL)", name="owner"),
        Index("uq_booking_holds_booking_resource", "booking_id", "resource_id", unique=True),
        Index("ix_booking_holds_resource_start", "resource_id", "start_time", "end_time"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    booking_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bookings.id"))
    block_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("resource_blocks.id"))
    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resources.id"))
    start_time: Mapped[datetime] = mapped_column(UTCDateTime)
    end_time: Mapped[datetime] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean)


class ResourceBlock(Base):
    """Time off and other busy time. It holds its resource like a booking (a BookingHold row)."""

    __tablename__ = "resource_blocks"
    __table_args__ = (
        Index("ix_resource_blocks_resource", "resource_id", "start_time"),
        Index("ix_resource_blocks_calendar", "calendar_id", "calendar_href"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id"))
    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resources.id"))
    start_time: Mapped[datetime] = mapped_column(UTCDateTime)
    end_time: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Busy time pulled from a connected calendar: which connection, which calendar object (its
    # URL, where a deletion is reported), and the event's UID. None for blocks made by the API.
    calendar_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("calendar_connections.id"))
    calendar_href: Mapped[str | None] = mapped_column(String(2048))
    calendar_uid: Mapped[str | None] = mapped_column(String(500))


class CalendarConnection(Base):
    """One CalDAV calendar connected to a resource (docs/calendars.md). The password is
    encrypted with SLOTGRAPH_ENCRYPTION_KEY; the sync state lives here too."""

    __tablename__ = "calendar_connections"
    __table_args__ = (
        Index("uq_calendar_connections_resource", "resource_id", unique=True),
        Index("ix_calendar_connections_due", "next_sync_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id"))
    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resources.id"))
    url: Mapped[str] = mapped_column(String(2048))
    username: Mapped[str] = mapped_column(String(320))
    password_encrypted: Mapped[str] = mapped_column(Text)
    push: Mapped[bool] = mapped_column(Boolean)
    pull: Mapped[bool] = mapped_column(Boolean)
    # pull state: the server's sync-token (or caldav's etag digest when it has none)
    sync_token: Mapped[str | None] = mapped_column(String(1000))
    last_full_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_sync_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BookingTransition(Base):
    """History: one row per transition (and per creation), never updated."""

    __tablename__ = "booking_transitions"
    __table_args__ = (Index("ix_booking_transitions_booking", "booking_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id"))
    from_status: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    message: Mapped[str | None] = mapped_column(Text)
    actor_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # None: the system
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class Event(Base):
    """The outbox: written in the transaction that caused it; payload serialised once, here."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_app_seq", "app_id", "seq"),
        Index("ix_events_booking_seq", "booking_id", "seq"),
        Index(
            "ix_events_undispatched",
            "seq",
            postgresql_where=text("dispatched_at IS NULL"),
            sqlite_where=text("dispatched_at IS NULL"),
        ),
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
    # Set when the worker has created this event's deliveries (one per matching endpoint).
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The X-Request-Id of the request that caused the event (None for the worker's timers).
    request_id: Mapped[str | None] = mapped_column(String(128))


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
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id"))
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
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deliveries.id"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker_id: Mapped[str] = mapped_column(String(64))


class Project(Base):
    """A Timekit-style project: what a booking widget shows and books (api/timekit).

    Stored on its own, apart from booking pages (BookingPage). `settings` holds the widget's
    `booking`, `availability`, `availability_constraints`, `customer_fields` and `ui` objects.
    """

    __tablename__ = "projects"
    __table_args__ = (
        Index("uq_projects_app_slug", "app_id", "slug", unique=True),
        Index("ix_projects_app_created", "app_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id"))
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100))
    resource_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BookingPage(Base):
    """A public booking page, `/book/{slug}` (services/pages.py, docs/booking-pages.md).

    Slugs are unique on the server among live pages; a deleted page is archived, so the manage
    links of bookings made through it keep their notice rules.
    """

    __tablename__ = "booking_pages"
    __table_args__ = (
        Index(
            "uq_booking_pages_slug",
            "slug",
            unique=True,
            postgresql_where=text("archived_at IS NULL"),
            sqlite_where=text("archived_at IS NULL"),
        ),
        Index("ix_booking_pages_app_created", "app_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id"))
    slug: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    resource_ids: Mapped[list[str]] = mapped_column(JSONType)
    mode: Mapped[str] = mapped_column(String(8))  # any | all
    durations: Mapped[list[int]] = mapped_column(JSONType)  # seconds, in the order shown
    graph: Mapped[str] = mapped_column(String(32))
    fields: Mapped[dict[str, Any]] = mapped_column(JSONType)  # page_schemas.PageFields
    locale: Mapped[str] = mapped_column(String(35))
    timezone: Mapped[str | None] = mapped_column(String(64))  # None: the first resource's
    min_cancel_notice: Mapped[timedelta] = mapped_column(Seconds)
    min_reschedule_notice: Mapped[timedelta] = mapped_column(Seconds)
    reminder: Mapped[timedelta | None] = mapped_column(Seconds)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdempotencyKey(Base):
    """The first answer to a request made with an `Idempotency-Key`, kept 24 h per app and key.

    Written in the same transaction as the change the request made, so a change exists exactly
    when its answer is stored (services/idempotency.py).
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires", "expires_at"),)

    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of method, path, query, body
    status_code: Mapped[int] = mapped_column(Integer)
    headers: Mapped[dict[str, str]] = mapped_column(JSONType)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WorkerHeartbeat(Base):
    """Each worker's last loop, for /readyz: events are only delivered while one runs."""

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)


def table_of(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


BOOKING_HOLDS = table_of(BookingHold)
BOOKING_TOKENS = table_of(BookingToken)
BOOKING_TRANSITIONS = table_of(BookingTransition)
EVENTS = table_of(Event)
