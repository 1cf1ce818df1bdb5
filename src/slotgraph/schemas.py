"""The public JSON contract: request and response models.

The API validates requests with these, and the outbox serialises `BookingOut` into event payloads,
so a webhook receiver sees a booking exactly as `GET /v1/bookings/{id}` shows it.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from slotgraph.domain.graphs import GRAPHS
from slotgraph.domain.webhooks import valid_filter
from slotgraph.webhooks.ssrf import UrlNotAllowed, check_shape

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
    return value.strip().lower()


def _meta(value: dict[str, Any]) -> dict[str, Any]:
    if len(orjson.dumps(value)) > MAX_META_BYTES:
        raise ValueError(f"meta is larger than {MAX_META_BYTES} bytes as JSON")
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration")
    return value


def _non_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must not be negative")
    return value


def _graph(value: str) -> str:
    if value not in GRAPHS:
        raise ValueError(f"unknown graph; one of: {', '.join(GRAPHS)}")
    return value


def _end_after_start(end: datetime | None, info: ValidationInfo) -> datetime | None:
    start = info.data.get("start_time")
    if end is not None and start is not None and end <= start:
        raise ValueError("end_time must be after start_time")
    return end


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# An instant with an explicit offset (naive input is refused), normalised to UTC.
Instant = Annotated[AwareDatetime, AfterValidator(_to_utc)]
TimeZone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_timezone)]
Email = Annotated[str, Field(max_length=320), AfterValidator(_email)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Meta = Annotated[dict[str, Any], AfterValidator(_meta)]
Text = Annotated[str, Field(max_length=10_000)]
PositiveDuration = Annotated[timedelta, AfterValidator(_positive)]
Duration = Annotated[timedelta, AfterValidator(_non_negative)]
GraphName = Annotated[str, AfterValidator(_graph)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- resources -----------------------------------------------------------------------------------


class ResourceCreate(Input):
    name: Name
    timezone: TimeZone
    kind: Annotated[str, Field(max_length=100)] | None = None
    location: Annotated[str, Field(max_length=200)] | None = None
    email: Email | None = None
    meta: Meta = Field(default_factory=dict)


class ResourceUpdate(Input):
    """Partial update: fields left out keep their value."""

    name: Name | None = None
    timezone: TimeZone | None = None
    kind: Annotated[str, Field(max_length=100)] | None = None
    location: Annotated[str, Field(max_length=200)] | None = None
    email: Email | None = None
    meta: Meta | None = None


class ResourceOut(BaseModel):
    resource_id: uuid.UUID
    name: str
    kind: str | None
    timezone: str
    location: str | None
    email: str | None
    meta: dict[str, Any]
    archived: bool
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime


# -- clients -------------------------------------------------------------------------------------


class ClientCreate(Input):
    name: Name
    email: Email | None = None
    phone: Annotated[str, Field(max_length=50)] | None = None
    timezone: TimeZone | None = None
    meta: Meta = Field(default_factory=dict)


class ClientUpdate(Input):
    name: Name | None = None
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
    created_at: datetime
    updated_at: datetime


class Customer(Input):
    """An inline client on a booking: found by email, or created."""

    name: Name
    email: Email
    phone: Annotated[str, Field(max_length=50)] | None = None
    timezone: TimeZone | None = None


# -- bookings ------------------------------------------------------------------------------------


class BookingCreate(Input):
    graph: GraphName = "instant"
    resource_id: uuid.UUID | None = None
    start_time: Instant | None = None
    end_time: Instant | None = None
    client_id: uuid.UUID | None = None
    customer: Customer | None = None
    details: Text | None = None
    meta: Meta = Field(default_factory=dict)
    # instant_payment, group_customer_payment
    payment_timeout: PositiveDuration | None = None
    # group_owner
    max_seats: Annotated[int, Field(ge=1, le=100_000)] | None = None
    min_cancel_time: Duration | None = None
    min_booking_time: Duration | None = None
    max_booking_time: Duration | None = None
    # group_customer, group_customer_payment
    owner_booking_id: uuid.UUID | None = None
    # complete automatically one hour after end_time (confirmed and paid bookings)
    auto_complete: bool = True

    _end_after_start = field_validator("end_time")(_end_after_start)


class BookingUpdate(Input):
    """Partial update: fields left out keep their value."""

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
    graph: str
    status: str
    resource_id: uuid.UUID
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
    version: int
    created_at: datetime
    updated_at: datetime


class TransitionOut(BaseModel):
    from_status: str | None = Field(serialization_alias="from")
    action: str
    to: str
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


# -- webhooks and events -------------------------------------------------------------------------


def _filters(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    bad = [f for f in value if not valid_filter(f)]
    if bad:
        raise ValueError(f"not an event type or pattern: {', '.join(bad)} (e.g. booking.*)")
    return sorted(set(value))


def _url(value: str) -> str:
    try:
        check_shape(value)
    except UrlNotAllowed as exc:
        raise ValueError(str(exc)) from exc
    return value


Url = Annotated[str, Field(max_length=2048), AfterValidator(_url)]
EventFilters = Annotated[list[str] | None, Field(max_length=100), AfterValidator(_filters)]


class WebhookCreate(Input):
    url: Url
    events: EventFilters = None
    description: Annotated[str, Field(max_length=500)] | None = None


class WebhookUpdate(Input):
    url: Url | None = None
    events: EventFilters = None
    enabled: bool | None = None
    description: Annotated[str, Field(max_length=500)] | None = None


class WebhookOut(BaseModel):
    webhook_id: uuid.UUID
    url: str
    events: list[str] | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(WebhookOut):
    secret: str


class AttemptOut(BaseModel):
    event_id: uuid.UUID
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    response_body: str | None
    next_retry_at: datetime | None


class DeliveryOut(BaseModel):
    event_id: uuid.UUID
    webhook_id: uuid.UUID
    status: str
    attempts: int
    next_attempt_at: datetime | None


class EventOut(BaseModel):
    event_id: uuid.UUID
    type: str
    booking_id: uuid.UUID | None
    created_at: datetime
    payload: dict[str, Any]
