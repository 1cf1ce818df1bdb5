"""The declarative base every model shares: the naming convention, the JSON type, UUIDv7 ids."""

from __future__ import annotations

import os
import time
import uuid

from sqlalchemy import JSON, MetaData, Table
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase

JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


_last_v7 = 0


def new_id() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): time-ordered, so ids sort in creation order and index well.

    Strictly increasing within a process: 48 bits of milliseconds, then a 74-bit random tail
    that is bumped instead of redrawn when the clock has not moved on.
    """
    global _last_v7
    ms = time.time_ns() // 1_000_000
    tail = int.from_bytes(os.urandom(10)) >> 6  # 74 random bits
    value = (ms << 74) | tail
    if value <= _last_v7:
        value = _last_v7 + 1
    _last_v7 = value
    ms, tail = value >> 74, value & ((1 << 74) - 1)
    rand_a, rand_b = tail >> 62, tail & ((1 << 62) - 1)
    return uuid.UUID(int=(ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b)


def table_of(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table
