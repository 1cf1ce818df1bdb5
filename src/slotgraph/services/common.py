"""Small things every service needs: who is calling, and opaque cursors."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import orjson

from slotgraph.appsettings import AppSettings
from slotgraph.bounds import in_range
from slotgraph.errors import BadRequest

KeyKind = Literal["secret", "public"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: an app, the key it used, and the app's settings."""

    app_id: uuid.UUID
    key_id: uuid.UUID
    kind: KeyKind
    settings: AppSettings


def encode_cursor(at: datetime, id_: uuid.UUID) -> str:
    raw = orjson.dumps([at.isoformat(), str(id_)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, id_ = orjson.loads(raw)
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None or not in_range(parsed):
            raise ValueError("naive or out of range")
        return parsed, uuid.UUID(id_)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise BadRequest("cursor is not one this API returned", code_hint="cursor") from exc
