"""A booking page's form books once, however often it is sent.

A double click, or a reload of the confirmation, sends the same form again. On one resource the
second send found the time taken (409); on a pool (`mode: any`) it booked the next resource: the
same customer twice at the same time, two emails, two rooms held. So each form carries a
`submission` (random, minted with the form: `new_submission`), and the create is keyed by it
as an API create is by its `Idempotency-Key` (services/idempotency.py `Keyed`): the booking and
its answer commit together, and a second send of the form, at once or later, gets that answer
(the same booking and manage link) instead of making another. The answer is kept 24 hours,
like an API key's; the submission is in no one's form but the visitor's, and comes with the
visitor's CSRF cookie.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.errors import IdempotencyKeyInFlight
from slotgraph.schemas import BookingCreate, BookingCreated
from slotgraph.services import idempotency
from slotgraph.services.bookings import creating
from slotgraph.services.common import Principal

_SUBMISSION = re.compile(r"[A-Za-z0-9_-]{16,64}")
# A second send that finds the first still running waits for its answer this long at most
# (a create takes milliseconds; PostgreSQL only: SQLite runs them one after the other).
_WAIT_STEPS, _WAIT_SECONDS = 40, 0.05


def new_submission() -> str:
    return secrets.token_urlsafe(16)  # 128 random bits


async def create_once(
    session: AsyncSession,
    *,
    principal: Principal,
    data: BookingCreate,
    now: datetime,
    page_id: uuid.UUID,
    submission: str | None,
) -> BookingCreated:
    """create_booking for a page's form: the booking of this `submission` if it was sent before,
    else a new one. A form without a valid submission (made before it existed) books as it
    did: once per send."""
    if submission is None or not _SUBMISSION.fullmatch(submission):
        return await creating.create_booking(
            session, principal=principal, data=data, now=now, page_id=page_id
        )
    claim = idempotency.Claim(
        principal.app_id,
        f"page {page_id} {submission}",
        idempotency.fingerprint("POST", f"page {page_id}", "", b""),
    )
    for _ in range(3):
        session.info[idempotency.KEYED] = idempotency.Keyed(claim)
        stored: idempotency.Stored | None
        try:
            stored = await creating.create_answered(
                session,
                principal=principal,
                data=data,
                now=now,
                answer=lambda _shown, body: idempotency.Stored(201, {}, body),
                page_id=page_id,
            )
        except idempotency.KeyTaken:
            stored = await _first_answer(session, claim, now)
        finally:
            session.info.pop(idempotency.KEYED, None)
        if stored is not None:
            return BookingCreated.model_validate_json(stored.body)
        # The first send failed (nothing was stored): this one books, or fails the same way.
    raise IdempotencyKeyInFlight(idempotency.IN_FLIGHT)


async def _first_answer(
    session: AsyncSession, claim: idempotency.Claim, now: datetime
) -> idempotency.Stored | None:
    """The answer of the first send of the form once it has committed; None if it failed
    (and stored nothing)."""
    for _ in range(_WAIT_STEPS):
        async with session.begin():
            conn = await session.connection()
            try:
                return await idempotency.begin(conn, claim, now=now)
            except IdempotencyKeyInFlight:
                pass
        await asyncio.sleep(_WAIT_SECONDS)
    raise IdempotencyKeyInFlight(idempotency.IN_FLIGHT)
