"""Bookings: create, update, act on; the booking as every reader sees it; its history."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from slotgraph.bounds import MAX_SEATS, Instant, PaymentTimeout, Reminder, SeatAdvance, SeatNotice
from slotgraph.schemas.clients import Customer
from slotgraph.schemas.fields import (
    GraphName,
    Input,
    Locale,
    Meta,
    StatusName,
    Text,
    end_after_start,
)

# The customer's language, on create and on update: one type, so one rule (schemas/fields.py).
BookingLocale = Annotated[
    Locale | None,
    Field(
        description="The language of the customer's emails, their .ics and the manage page: "
        "a locale Babel knows (de, de_AT, en_GB, ...; docs/emails.md). Default: English."
    ),
]


class BookingCreate(Input):
    graph: GraphName = "instant"
    resource_id: uuid.UUID | None = None
    # A pool instead of resource_id: book the first free one, or (assign "all") every one.
    resource_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=50)] | None = None
    assign: Literal["in_order", "least_busy", "all"] = "in_order"
    # Secret key only: skip opening hours, notice, advance, duration and grid (never overlaps).
    override_rules: bool = False
    start_time: Instant | None = None
    end_time: Instant | None = None
    client_id: uuid.UUID | None = None
    customer: Customer | None = None
    details: Text | None = None
    meta: Meta = Field(default_factory=dict)
    # instant_payment, group_customer_payment
    payment_timeout: PaymentTimeout | None = None
    # group_owner
    max_seats: Annotated[int, Field(ge=1, le=MAX_SEATS)] | None = None
    min_cancel_time: SeatNotice | None = None
    min_booking_time: SeatNotice | None = None
    max_booking_time: SeatAdvance | None = None
    # group_customer, group_customer_payment
    owner_booking_id: uuid.UUID | None = None
    # complete automatically one hour after end_time (confirmed and paid bookings)
    auto_complete: bool = True
    # emails to the customer and the owner (docs/emails.md); false: the integrator sends its own
    notify: bool = True
    # remind the customer by email this long before the start (e.g. PT24H); None: no reminder
    reminder: Reminder | None = None
    locale: BookingLocale = None

    _end_after_start = field_validator("end_time")(end_after_start)


class BookingUpdate(Input):
    """Partial update: fields left out keep their value."""

    override_rules: bool = False
    resource_id: uuid.UUID | None = None
    start_time: Instant | None = None
    end_time: Instant | None = None
    details: Text | None = None
    meta: Meta | None = None
    locale: BookingLocale = None

    _end_after_start = field_validator("end_time")(end_after_start)


class ActionBody(Input):
    message: Text | None = None
    payment_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class BookingOut(BaseModel):
    booking_id: uuid.UUID
    graph: GraphName
    status: StatusName
    resource_id: uuid.UUID
    resource_ids: list[uuid.UUID]  # every resource the booking holds (assign "all": several)
    client_id: uuid.UUID | None
    start_time: datetime
    end_time: datetime
    details: str | None
    meta: dict[str, Any]
    available_actions: list[str]
    completed: bool
    holds: bool  # whether this booking occupies its slot (or seat) now
    payment_due_at: datetime | None
    payment_id: str | None
    max_seats: int | None
    seats_taken: int | None
    seats_left: int | None
    min_cancel_time: timedelta | None
    min_booking_time: timedelta | None
    max_booking_time: timedelta | None
    owner_booking_id: uuid.UUID | None
    auto_complete: bool
    notify: bool
    reminder: timedelta | None
    # A default: the bookings in events written before it was shown have none.
    locale: Annotated[
        str | None,
        Field(
            description="The locale the customer's emails speak: given on create, or its "
            "booking page's. null: English."
        ),
    ] = None
    version: int
    created_at: datetime
    updated_at: datetime


class BookingCreated(BookingOut):
    # The customer's token (`ct_...`, for `Authorization: Bearer` and the manage link), shown
    # once, here: only its hash is stored. None: the booking has no client.
    customer_token: str | None = None


class TransitionOut(BaseModel):
    change_id: uuid.UUID = Field(
        description="This change; `before` in the history's query reads the ones made before it."
    )
    from_status: StatusName | None = Field(serialization_alias="from")
    action: str
    to: StatusName
    at: datetime
    message: str | None
    actor_key_id: uuid.UUID | None
    meta: dict[str, Any]
