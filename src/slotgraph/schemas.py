"""The public JSON contract: request and response models.

The API validates requests with these, and the outbox serialises `BookingOut` into event payloads,
so a webhook receiver sees a booking exactly as `GET /v1/bookings/{id}` shows it.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from slotgraph.bounds import (
    MAX_SEATS,
    Advance,
    Buffer,
    Day,
    Instant,
    Notice,
    PaymentTimeout,
    Reminder,
    RuleDuration,
    SeatAdvance,
    SeatNotice,
    SlotStep,
)
from slotgraph.domain.graphs import GRAPHS

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_META_BYTES = 16_384


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("not an email address")
    if "[" in value or "]" in value:  # a domain literal (a@[127.0.0.1]) names no mail domain
        raise ValueError("not an email address: a domain literal (an address in []) is refused")
    return value.strip().lower()


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_control(value: str) -> bool:
    """Whether `value` holds a control character (C0, DEL): never in a person's name, and
    a CR or LF in one would reach an email header."""
    return _CONTROL.search(value) is not None


def _person_name(value: str) -> str:
    if has_control(value):
        raise ValueError("control characters (such as CR, LF, tab) are not allowed in a name")
    return value


def _meta(value: dict[str, Any]) -> dict[str, Any]:
    if len(orjson.dumps(value)) > MAX_META_BYTES:
        raise ValueError(f"meta is larger than {MAX_META_BYTES} bytes as JSON")
    return value


def _graph(value: str) -> str:
    if value not in GRAPHS:
        raise ValueError(f"unknown graph; one of: {', '.join(GRAPHS)}")
    return value


# Every state of every graph, in table order: the values a booking's `status` can take.
STATUSES = tuple(dict.fromkeys(s for g in GRAPHS.values() for s in g.states))


def _status(value: str) -> str:
    if value not in STATUSES:
        raise ValueError(f"unknown status; one of: {', '.join(STATUSES)}")
    return value


def _end_after_start(end: datetime | None, info: ValidationInfo) -> datetime | None:
    start = info.data.get("start_time")
    if end is not None and start is not None and end <= start:
        raise ValueError("end_time must be after start_time")
    return end


_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _hours(value: list[list[str]]) -> list[list[str]]:
    for pair in value:
        if len(pair) != 2:
            raise ValueError('each interval is ["HH:MM", "HH:MM"]')
        start, end = pair
        if not _HHMM.match(start) or not (_HHMM.match(end) or end == "24:00"):
            raise ValueError(f"{pair}: times are HH:MM (24-hour; an end may be 24:00)")
        if end != "24:00" and end <= start:
            raise ValueError(f"{pair}: the end must be after the start")
    return sorted(value)


def _weekly(value: dict[str, list[list[str]]] | None) -> dict[str, list[list[str]]] | None:
    if value is None:
        return None
    unknown = sorted(set(value) - set(WEEKDAY_NAMES))
    if unknown:
        raise ValueError(f"unknown weekdays {unknown}; use {', '.join(WEEKDAY_NAMES)}")
    return value


HoursList = Annotated[list[list[str]], Field(max_length=48), AfterValidator(_hours)]
WeeklyHours = Annotated[dict[str, HoursList] | None, AfterValidator(_weekly)]
TimeZone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_timezone)]
Email = Annotated[str, Field(max_length=320), AfterValidator(_email)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
# a client's or a customer's name (it goes into emails, their headers included)
PersonName = Annotated[Name, AfterValidator(_person_name)]
Meta = Annotated[dict[str, Any], AfterValidator(_meta)]
Text = Annotated[str, Field(max_length=10_000)]
# Enums in the API description, checked by a validator (the names come from the graph tables).
GraphName = Annotated[str, Field(json_schema_extra={"enum": list(GRAPHS)}), AfterValidator(_graph)]
StatusName = Annotated[
    str, Field(json_schema_extra={"enum": list(STATUSES)}), AfterValidator(_status)
]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- resources -----------------------------------------------------------------------------------


class DateHours(Input):
    """Hours for one local date, replacing that weekday's (`[]`: closed all day)."""

    date: Day
    hours: HoursList


def _exceptions(value: list[DateHours]) -> list[DateHours]:
    dates = [e.date for e in value]
    if len(set(dates)) != len(dates):
        raise ValueError("each date may appear once")
    return sorted(value, key=lambda e: e.date)


Exceptions = Annotated[list[DateHours], Field(max_length=1000), AfterValidator(_exceptions)]


class AvailabilityRules(Input):
    """A resource's availability rules. In an update, fields left out keep their value."""

    weekly_hours: WeeklyHours = None
    exceptions: Exceptions = Field(default_factory=list)
    buffer_before: Buffer = timedelta(0)
    buffer_after: Buffer = timedelta(0)
    # None: no notice, and the secret key may book in the past (the public key never may).
    min_notice: Notice | None = None
    max_advance: Advance | None = None
    min_duration: RuleDuration | None = None
    max_duration: RuleDuration | None = None
    slot_step: SlotStep = timedelta(minutes=15)


class ResourceCreate(AvailabilityRules):
    name: Name
    timezone: TimeZone
    kind: Annotated[str, Field(max_length=100)] | None = None
    location: Annotated[str, Field(max_length=200)] | None = None
    email: Email | None = None
    meta: Meta = Field(default_factory=dict)
    # The secret feed's summary: the booking's details (true) or just "Busy" (false).
    feed_shows_details: bool = False


class ResourceUpdate(AvailabilityRules):
    """Partial update: fields left out keep their value."""

    name: Name | None = None
    timezone: TimeZone | None = None
    kind: Annotated[str, Field(max_length=100)] | None = None
    location: Annotated[str, Field(max_length=200)] | None = None
    email: Email | None = None
    meta: Meta | None = None
    feed_shows_details: bool | None = None


class AvailabilityRulesOut(BaseModel):
    weekly_hours: dict[str, list[list[str]]] | None
    exceptions: list[dict[str, Any]]
    buffer_before: timedelta
    buffer_after: timedelta
    min_notice: timedelta | None
    max_advance: timedelta | None
    min_duration: timedelta | None
    max_duration: timedelta | None
    slot_step: timedelta


class ResourceOut(AvailabilityRulesOut):
    resource_id: uuid.UUID
    name: str
    kind: str | None
    timezone: str
    location: str | None
    email: str | None
    meta: dict[str, Any]
    feed_shows_details: bool
    # The secret iCalendar feed (GET /v1/resources/{id} with the secret key only; else null).
    feed_url: str | None = None
    archived: bool
    archived_at: datetime | None
    version: int  # goes up by one with every change; the ETag is `"<version>"`
    created_at: datetime
    updated_at: datetime


# -- clients -------------------------------------------------------------------------------------


class ClientCreate(Input):
    name: PersonName
    email: Email | None = None
    phone: Annotated[str, Field(max_length=50)] | None = None
    timezone: TimeZone | None = None
    meta: Meta = Field(default_factory=dict)


class ClientUpdate(Input):
    name: PersonName | None = None
    email: Email | None = None
    phone: Annotated[str, Field(max_length=50)] | None = None
    timezone: TimeZone | None = None
    meta: Meta | None = None


class ClientOut(BaseModel):
    client_id: uuid.UUID
    name: str
    email: str | None
    phone: str | None
    timezone: str | None
    meta: dict[str, Any]
    version: int  # goes up by one with every change; the ETag is `"<version>"`
    created_at: datetime
    updated_at: datetime


class Customer(Input):
    """An inline client on a booking: found by email, or created."""

    name: PersonName
    email: Email
    phone: Annotated[str, Field(max_length=50)] | None = None
    timezone: TimeZone | None = None


# -- bookings ------------------------------------------------------------------------------------


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

    _end_after_start = field_validator("end_time")(_end_after_start)


class BookingUpdate(Input):
    """Partial update: fields left out keep their value."""

    override_rules: bool = False
    resource_id: uuid.UUID | None = None
    start_time: Instant | None = None
    end_time: Instant | None = None
    details: Text | None = None
    meta: Meta | None = None

    _end_after_start = field_validator("end_time")(_end_after_start)


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
    version: int
    created_at: datetime
    updated_at: datetime


class BookingCreated(BookingOut):
    # The customer's token (`ct_...`, for `Authorization: Bearer` and the manage link), shown
    # once, here: only its hash is stored. None: the booking has no client.
    customer_token: str | None = None


class TransitionOut(BaseModel):
    from_status: StatusName | None = Field(serialization_alias="from")
    action: str
    to: StatusName
    at: datetime
    message: str | None
    actor_key_id: uuid.UUID | None
    meta: dict[str, Any]


# -- lists ---------------------------------------------------------------------------------------


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None


class Listed(BaseModel, Generic[T]):
    data: list[T]


# -- availability --------------------------------------------------------------------------------


class BlockCreate(Input):
    start_time: Instant
    end_time: Instant
    reason: Annotated[str, Field(max_length=500)] | None = None

    _end_after_start = field_validator("end_time")(_end_after_start)


class BlockOut(BaseModel):
    block_id: uuid.UUID
    resource_id: uuid.UUID
    start_time: datetime
    end_time: datetime
    reason: str | None
    created_at: datetime


class BlockCreated(BlockOut):
    # The holding bookings the new block overlaps (time or buffers); nothing is changed on them.
    conflicts: list[uuid.UUID]


class Slot(BaseModel):
    start_time: datetime
    end_time: datetime
    resource_ids: list[uuid.UUID]


class GroupSlot(BaseModel):
    booking_id: uuid.UUID
    resource_id: uuid.UUID
    start_time: datetime
    end_time: datetime
    max_seats: int
    seats_left: int
    details: str | None
