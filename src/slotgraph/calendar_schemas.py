"""The public JSON contract of calendars: feeds, free/busy, CalDAV connections."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


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
