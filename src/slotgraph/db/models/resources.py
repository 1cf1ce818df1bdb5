"""What can be booked: resources with their rules, their blocks of time off, and the CalDAV
calendar connected to one."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from slotgraph.db.models.base import Base, JSONType, new_id
from slotgraph.db.types import Seconds, UTCDateTime


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


class ResourceBlock(Base):
    """Time off and other busy time. It holds its resource like a booking (a BookingHold row)."""

    __tablename__ = "resource_blocks"
    __table_args__ = (
        Index("ix_resource_blocks_resource", "resource_id", "start_time"),
        Index("ix_resource_blocks_calendar", "calendar_id", "calendar_href"),
        Index(  # a connection's live blocks (migration 0021): at most 50,000
            "ix_resource_blocks_calendar_live",
            "calendar_id",
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
        Index(  # a resource's live blocks made through the API (migration 0022): at most 50,000
            "ix_resource_blocks_own_live",
            "resource_id",
            postgresql_where=text("calendar_id IS NULL AND deleted_at IS NULL"),
            sqlite_where=text("calendar_id IS NULL AND deleted_at IS NULL"),
        ),
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
        Index(
            "uq_calendar_connections_resource",
            "resource_id",
            unique=True,
            postgresql_where=text("disconnected_at IS NULL"),
            sqlite_where=text("disconnected_at IS NULL"),
        ),
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
    # A sweep in progress (migration 0023): the calendar was larger than a pull reads, and the
    # next pulls list it whole and read its objects from this URL on, in URL order, until one
    # has read to the end (services/calendar_sync.py). None: no sweep.
    pull_resume: Mapped[str | None] = mapped_column(String(2048))
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
    # Set: disconnected with `remove_pushed`; kept (hidden, neither pulled nor pushed) for its
    # account until the worker has removed the pushed events (services/calendar_removals.py).
    disconnected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
