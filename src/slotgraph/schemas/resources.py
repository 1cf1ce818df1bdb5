"""Resources and their availability rules, in and out."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from slotgraph.bounds import Advance, Buffer, Day, Notice, RuleDuration, SlotStep
from slotgraph.schemas.fields import Email, HoursList, Input, Meta, Name, TimeZone, WeeklyHours


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
