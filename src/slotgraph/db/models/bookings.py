"""Bookings and what hangs off each one: the slots it holds, its secret links, its history."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from slotgraph.db.models.base import Base, JSONType, new_id, table_of
from slotgraph.db.types import Seconds, UTCDateTime
from slotgraph.domain.graphs import PAYMENT_TIMEOUT

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
    # The locale it was made in (its booking page's): the customer's emails speak it. None
    # (made on the API): English.
    locale: Mapped[str | None] = mapped_column(String(35))
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
        Index(  # a block's hold by key: block deletions, disconnects (migration 0020)
            "ix_booking_holds_block",
            "block_id",
            postgresql_where=text("block_id IS NOT NULL"),
            sqlite_where=text("block_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    booking_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bookings.id"))
    block_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("resource_blocks.id"))
    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resources.id"))
    start_time: Mapped[datetime] = mapped_column(UTCDateTime)
    end_time: Mapped[datetime] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean)


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


@dataclass(slots=True)
class NewBooking:
    """A booking being created, as the plain values of its row (the create writes it without
    the ORM: building a `Booking` was a tenth of a create's CPU, ADR 0005). One field per column
    of `bookings`, by the same names, so what reads a booking reads this too."""

    id: uuid.UUID
    app_id: uuid.UUID
    graph: str
    status: str
    resource_id: uuid.UUID
    resource_ids: list[str] | None
    client_id: uuid.UUID | None
    start_time: datetime
    end_time: datetime
    details: str | None
    meta: dict[str, Any]
    payment_due_at: datetime | None
    payment_id: str | None
    max_seats: int | None
    seats_taken: int | None
    min_cancel_time: timedelta | None
    min_booking_time: timedelta | None
    max_booking_time: timedelta | None
    owner_booking_id: uuid.UUID | None
    auto_complete: bool
    page_id: uuid.UUID | None
    notify: bool
    reminder: timedelta | None
    locale: str | None
    remind_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime

    def row(self) -> tuple[Table, dict[str, Any]]:
        """Its table and every column's value, for queries.insert_rows."""
        return BOOKINGS, dict(zip(_NEW_BOOKING_COLUMNS, _new_booking_values(self), strict=True))


_NEW_BOOKING_COLUMNS = tuple(f.name for f in fields(NewBooking))
_new_booking_values = attrgetter(*_NEW_BOOKING_COLUMNS)

BOOKINGS = table_of(Booking)

BOOKING_HOLDS = table_of(BookingHold)

BOOKING_TOKENS = table_of(BookingToken)

BOOKING_TRANSITIONS = table_of(BookingTransition)
