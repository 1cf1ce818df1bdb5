"""Request and answer bodies of webhook endpoints, their deliveries and the events log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from slotgraph.domain.webhooks import valid_filter
from slotgraph.schemas import Input
from slotgraph.webhooks.ssrf import UrlNotAllowed, check_shape


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


WebhookFormat = Literal["standard", "timekit"]


class WebhookCreate(Input):
    url: Url
    events: EventFilters = None
    description: Annotated[str, Field(max_length=500)] | None = None
    # "timekit": Timekit's booking body signed with x-timekit-signature (docs/webhooks.md)
    format: WebhookFormat = "standard"


class WebhookUpdate(Input):
    url: Url | None = None
    events: EventFilters = None
    enabled: bool | None = None
    description: Annotated[str, Field(max_length=500)] | None = None
    format: WebhookFormat | None = None


class WebhookOut(BaseModel):
    webhook_id: uuid.UUID
    url: str
    events: list[str] | None
    format: str
    description: str | None
    enabled: bool
    disabled_reason: str | None
    version: int  # goes up by one with every change; the ETag is `"<version>"`
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
    request_id: str | None  # the X-Request-Id of the request that caused it (None: a timer)
    payload: dict[str, Any]


EmailStatus = Literal["pending", "sent", "failed", "suppressed", "skipped"]


class EmailOut(BaseModel):
    """One email of a booking (a delivery to one of the app's email targets; docs/emails.md)."""

    email_id: uuid.UUID = Field(description="The delivery's id (the `.eml` file names it).")
    booking_id: uuid.UUID | None
    event_id: uuid.UUID
    event_type: str
    audience: Literal["customer", "owner"]
    kind: str | None = Field(
        description="`booked`, `requested`, `confirmed`, `declined`, `rescheduled`, "
        "`cancelled`, `reminder` (customer); `new_booking`, `new_request` (owner)."
    )
    recipients: list[str] = Field(
        description="Where it goes: the booking's client's email (customer) or its resources' "
        "(owner), as they are now; an email already sent went to the address of that moment."
    )
    status: EmailStatus = Field(
        description="`pending` (waiting for its first try or a retry), `sent`, `failed` (every "
        "retry failed), `suppressed` (over the inbox's hourly limit: not sent, never retried), "
        "`skipped` (no address by the time it was sent)."
    )
    attempts: int
    last_attempt_at: datetime | None
    last_status_code: int | None = Field(description="The SMTP server's answer code.")
    last_error: str | None = Field(description="Why the last try failed, or why none was sent.")
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
