"""The JSON contract of booking pages (`/v1/pages`, issue 12; docs/booking-pages.md)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from slotgraph.bounds import Notice, RuleDuration
from slotgraph.schemas import Input, Locale, Name, Text, TimeZone

PAGE_GRAPHS = ("instant", "confirm_decline", "instant_payment", "group_customer")
PageGraph = Literal["instant", "confirm_decline", "instant_payment", "group_customer"]
Want = Literal["off", "optional", "required"]

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
Slug = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=SLUG_PATTERN,
        description="Lowercase letters, digits and inner dashes; the page is `/book/{slug}`.",
    ),
]
FieldKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


def _unique_durations(value: list[timedelta]) -> list[timedelta]:
    if len(set(value)) != len(value):
        raise ValueError("durations must differ")
    for d in value:
        if d % timedelta(minutes=1):
            raise ValueError("durations are whole minutes")
    return value


def _unique_ids(value: list[uuid.UUID]) -> list[uuid.UUID]:
    return list(dict.fromkeys(value))


def _unique_keys(value: list[CustomField]) -> list[CustomField]:
    keys = [f.key for f in value]
    if len(set(keys)) != len(keys):
        raise ValueError("custom field keys must differ")
    if {"name", "email", "phone", "notes"} & set(keys):
        raise ValueError("name, email, phone and notes are built in")
    return value


Durations = Annotated[
    list[RuleDuration], Field(min_length=1, max_length=10), AfterValidator(_unique_durations)
]
ResourceIds = Annotated[
    list[uuid.UUID], Field(min_length=1, max_length=50), AfterValidator(_unique_ids)
]


def _reminder(value: timedelta) -> timedelta:
    if value <= timedelta(0) or value > timedelta(days=365) or value % timedelta(minutes=1):
        raise ValueError("must be whole minutes, from PT1M to P365D")
    return value


Reminder = Annotated[timedelta, AfterValidator(_reminder)]


class CustomField(Input):
    """A text field of the form; its answer is stored in the booking's `meta.fields`."""

    key: FieldKey
    label: Name
    required: bool = False


class PageFields(Input):
    """What the form asks. Name and email are always asked (and required)."""

    phone: Want = "off"
    notes: Want = "off"
    custom: Annotated[list[CustomField], Field(max_length=5), AfterValidator(_unique_keys)] = Field(
        default_factory=list
    )


class PageCreate(Input):
    slug: Slug
    title: Name
    description: Text | None = None
    resource_ids: ResourceIds
    mode: Literal["any", "all"] = Field(
        default="any", description="any: one free resource of the pool; all: every one at once."
    )
    durations: Durations
    graph: PageGraph = "instant"
    fields: PageFields = Field(default_factory=PageFields)
    locale: Locale = "en"
    timezone: TimeZone | None = Field(
        default=None, description="The zone shown by default; null: the first resource's."
    )
    min_cancel_notice: Notice = timedelta(0)
    min_reschedule_notice: Notice = timedelta(0)
    reminder: Reminder | None = Field(
        default=None, description="Email the customer this long before the start (or null)."
    )


class PageUpdate(Input):
    """Partial update: fields left out keep their value (`null` clears the nullable ones)."""

    slug: Slug | None = None
    title: Name | None = None
    description: Text | None = None
    resource_ids: ResourceIds | None = None
    mode: Literal["any", "all"] | None = None
    durations: Durations | None = None
    graph: PageGraph | None = None
    fields: PageFields | None = None
    locale: Locale | None = None
    timezone: TimeZone | None = None
    min_cancel_notice: Notice | None = None
    min_reschedule_notice: Notice | None = None
    reminder: Reminder | None = None


class PageOut(BaseModel):
    page_id: uuid.UUID
    slug: str
    url: str  # the public page's path, `/book/{slug}`
    title: str
    description: str | None
    resource_ids: list[uuid.UUID]
    mode: Literal["any", "all"]
    durations: list[timedelta]
    graph: str
    fields: PageFields
    locale: str
    timezone: str | None
    min_cancel_notice: timedelta
    min_reschedule_notice: timedelta
    reminder: timedelta | None
    version: int
    created_at: datetime
    updated_at: datetime
