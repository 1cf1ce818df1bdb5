"""Clients, and the inline `customer` of a booking."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from slotgraph.schemas.fields import Email, Input, Meta, PersonName, TimeZone


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
