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
from slotgraph.errors import BadRequest, PreconditionFailed, PreconditionRequired

KeyKind = Literal["secret", "public"]
# "customer": a customer token (services/customer_tokens.py), limited to one booking
CallerKind = Literal["secret", "public", "customer"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: an app, the key it used, and the app's settings. A customer
    token has no key (`key_id` None) and opens `booking_id` only."""

    app_id: uuid.UUID
    key_id: uuid.UUID | None
    kind: CallerKind
    settings: AppSettings
    booking_id: uuid.UUID | None = None


# `If-Match`: a version, "*" (any), None (not sent), or FOREIGN_TAG: tags that are not ours,
# which match nothing. That 412 comes from here, after the request was validated and the object
# found (RFC 9110 13.2.1: a precondition is evaluated after the checks that answer another 4xx).
IfMatch = int | Literal["*"] | None
FOREIGN_TAG = -1


def check_version(principal: Principal, *, if_match: IfMatch, current: int) -> None:
    """The precondition of a change, checked on the locked row: `If-Match` names the current
    version (or `*`); without it, the change goes ahead unless the app requires it."""
    if if_match is None:
        if principal.settings.require_if_match:
            raise PreconditionRequired(
                "This app requires `If-Match` on changes: read the object, then send its ETag "
                f'(now `If-Match: "{current}"`) with the change.',
                current_version=current,
            )
        return
    if if_match == FOREIGN_TAG:
        raise PreconditionFailed(
            f'If-Match is not an ETag of this API (they look like `"{current}"`).',
            current_version=current,
        )
    if if_match != "*" and if_match != current:
        raise PreconditionFailed(
            # If-Match may name a version that never was ("7" of an object at 1): say only
            # what is true either way.
            f"This object is at version {current}, not {if_match}. "
            "Read it again, re-apply your change, and send the new ETag.",
            current_version=current,
        )


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
