"""The declarative base every model shares: the naming convention, the JSON type, UUIDv7 ids."""

from __future__ import annotations

import os
import threading
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


_last_v7 = 0  # the last id's 48-bit time and 74-bit tail, as one number
_TAIL = (1 << 74) - 1
_B62 = (1 << 62) - 1
_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)

# Random bytes drawn 409 ids' worth at a time (one getrandom call instead of one an id); a
# forked child drops its parent's, so two processes never draw the same tail.
_POOL_SIZE = 4090
_pool = b""
_at = _POOL_SIZE


# Ids are also drawn on aiosqlite's thread (the SQLite fan-out: services/sqlite_deliveries.py):
# one draw at a time, so no two take the same tail or time.
_lock = threading.Lock()


def _drop_pool() -> None:
    global _pool, _at, _lock
    _pool, _at, _lock = b"", _POOL_SIZE, threading.Lock()


os.register_at_fork(after_in_child=_drop_pool)

_new_uuid = object.__new__
_set = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown


def new_id() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): time-ordered, so ids sort in creation order and index well.

    Strictly increasing within a process: 48 bits of milliseconds, then a 74-bit random tail
    (from os.urandom) that is bumped instead of redrawn when the clock has not moved on.
    The UUID is built from its number without `uuid.UUID.__init__`'s checks (the number is in
    range by construction): 1.6-1.8 us an id instead of 2.3-2.8 measured in one run (the fan-out
    and the record each take one a delivery).
    """
    global _last_v7, _pool, _at
    with _lock:
        if _at == _POOL_SIZE:
            _pool, _at = os.urandom(_POOL_SIZE), 0
        tail = int.from_bytes(_pool[_at : _at + 10]) >> 6  # 74 random bits
        _at += 10
        value = ((time.time_ns() // 1_000_000) << 74) | tail
        if value <= _last_v7:
            value = _last_v7 + 1
        _last_v7 = value
    id_ = _new_uuid(uuid.UUID)
    _set(
        id_,
        "int",
        (value >> 74 << 80) | ((value & _TAIL) >> 62 << 64) | (value & _B62) | _VERSION_AND_VARIANT,
    )
    _set(id_, "is_safe", _UNKNOWN)
    return id_


def table_of(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table
