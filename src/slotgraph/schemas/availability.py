"""Blocks of time off, and the free slots and seats a search answers with."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, field_validator

from slotgraph.bounds import Instant
from slotgraph.schemas.fields import Input, end_after_start


class BlockCreate(Input):
    start_time: Instant
    end_time: Instant
    reason: Annotated[str, Field(max_length=500)] | None = None

    _end_after_start = field_validator("end_time")(end_after_start)


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
