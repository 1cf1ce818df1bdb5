"""Who books."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from slotgraph.db.models.base import Base, JSONType, new_id
from slotgraph.db.types import UTCDateTime


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
