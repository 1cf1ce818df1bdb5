"""The public JSON contract of calendars: feeds, free/busy, CalDAV connections."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from slotgraph.schemas import Input
from slotgraph.webhook_schemas import Url


class FeedOut(BaseModel):
    feed_url: str


class BusyInterval(BaseModel):
    start_time: datetime
    end_time: datetime


class ResourceFreeBusy(BaseModel):
    resource_id: uuid.UUID
    start: datetime
    end: datetime
    busy: list[BusyInterval]


class FreeBusyOut(BaseModel):
    start: datetime
    end: datetime
    resources: list[ResourceFreeBusy]


class CalendarConnect(Input):
    url: Url
    username: Annotated[str, Field(min_length=1, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=1000)]
    push: bool = True
    pull: bool = True


class CalendarCounts(BaseModel):
    pulled_blocks: int  # busy intervals pulled from the calendar (occurrences), now active
    pushed_events: int  # pushes (booking changes) the calendar has taken
    pending_pushes: int  # pushes waiting to be sent or retried
    failed_pushes: int  # pushes given up after every retry
    conflicts: int


class CalendarConflict(BaseModel):
    """A booking that overlaps busy time pulled from the calendar after it was booked."""

    booking_id: uuid.UUID
    block_id: uuid.UUID
    calendar_uid: str | None
    start_time: datetime
    end_time: datetime


class CalendarOut(BaseModel):
    resource_id: uuid.UUID
    url: str
    username: str  # the password is never shown
    push: bool
    pull: bool
    status: Literal["pending", "ok", "failing"]
    last_sync_at: datetime | None
    last_success_at: datetime | None
    next_sync_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    failures: int  # pulls failed in a row
    last_push_error: str | None  # the latest push attempt's error, if it failed
    last_push_error_at: datetime | None
    counts: CalendarCounts
    conflicts: list[CalendarConflict]
    created_at: datetime
    updated_at: datetime
