"""The installation's own rows, no app's: its secrets and the workers' heartbeats."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from slotgraph.db.models.base import Base
from slotgraph.db.types import UTCDateTime


class InstanceSecret(Base):
    """Secrets of this installation, made by the migrations (the feed key when no
    SLOTGRAPH_ENCRYPTION_KEY is set)."""

    __tablename__ = "instance_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class WorkerHeartbeat(Base):
    """Each worker's last loop, for /readyz: events are only delivered while one runs."""

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)
