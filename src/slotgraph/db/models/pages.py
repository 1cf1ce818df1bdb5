"""What the public ways in show: booking pages (`/book/{slug}`) and Timekit-style projects."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from slotgraph.db.models.base import Base, JSONType, new_id
from slotgraph.db.types import Seconds, UTCDateTime


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
