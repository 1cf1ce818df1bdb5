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

What the visitor sent is part of the key's fingerprint, as a request's body is of an
Idempotency-Key's: the same form sent again with other details (the back button, a name
corrected, another time chosen) books nothing either, but is told so (`SentBefore`, 422, with
the booking the first send made) instead of being shown that booking as if the edits were in it.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.errors import DatabaseBusy, IdempotencyKeyInFlight, IdempotencyKeyReused
from slotgraph.schemas import BookingCreate, BookingCreated
from slotgraph.services import idempotency
from slotgraph.services.bookings import creating, reading
from slotgraph.services.pages import PublicPage
from slotgraph.services.views import booking_out

_SUBMISSION = re.compile(r"[A-Za-z0-9_-]{16,64}")
# What a visitor's form decides of the booking (the rest is the page's: its resources, graph,
# locale, reminder), and so what a second send of the form is compared on.
_SENT = {"customer", "details", "meta", "start_time", "end_time", "owner_booking_id"}
# A second send that finds the first still running waits for it this long at most (a create
# takes milliseconds).
_WAIT = "2s"
SENT_BEFORE = (
    "This form was already sent, with other details. Nothing was changed: the booking below is "
    "the one it made."
)


class SentBefore(IdempotencyKeyReused):
    """The form's submission booked before, with other details: nothing new is booked, and
    nothing is changed. `first` is the booking the first send made, as it answered then."""

    def __init__(self, view: PublicPage, first: BookingCreated) -> None:
        super().__init__(SENT_BEFORE)
        self.view = view
        self.first = first


class StillSending(IdempotencyKeyInFlight):
    """The form's first send is still being written after the wait (409): nothing is booked by
    this one; a reload sends the form again and then shows the booking. `view` is the page."""

    def __init__(self, view: PublicPage) -> None:
        super().__init__(idempotency.IN_FLIGHT)
        self.view = view


def new_submission() -> str:
    return secrets.token_urlsafe(16)  # 128 random bits


async def create_once(
    session: AsyncSession,
    *,
    view: PublicPage,
    data: BookingCreate,
    now: datetime,
    submission: str | None,
) -> BookingCreated:
    """create_booking for a page's form: the booking of this `submission` if it was sent before
    with the same details, SentBefore if with others, else a new one. A form without a valid
    submission (made before it existed) books as it did: once per send."""
    page_id = view.page.page_id
    if submission is None or not _SUBMISSION.fullmatch(submission):
        return await creating.create_booking(
            session, principal=view.principal(), data=data, now=now, page_id=page_id
        )
    sent = data.model_dump_json(include=_SENT).encode()
    claim = idempotency.Claim(
        view.app_id,
        f"page {page_id} {submission}",
        idempotency.fingerprint("POST", f"page {page_id}", "", sent),
    )
    # Stored by a version that did not compare what was sent: taken as the same details.
    unknown = idempotency.fingerprint("POST", f"page {page_id}", "", b"")
    for _ in range(3):
        session.info[idempotency.KEYED] = idempotency.Keyed(claim)
        stored: idempotency.Stored | None
        try:
            stored = await creating.create_answered(
                session,
                principal=view.principal(),
                data=data,
                now=now,
                answer=lambda _shown, body: idempotency.Stored(201, {}, body),
                page_id=page_id,
            )
        except idempotency.KeyTaken:
            try:
                first = await _first_answer(session, claim, now, view)
            except IdempotencyKeyInFlight:
                raise StillSending(view) from None
            if first is not None:
                answered, booking = first
                if answered.fingerprint not in (claim.fingerprint, unknown):
                    raise SentBefore(view, booking) from None
                return booking
            stored = None
        finally:
            session.info.pop(idempotency.KEYED, None)
        if stored is not None:
            return BookingCreated.model_validate_json(stored.body)
        # The first send failed (nothing was stored): this one books, or fails the same way.
    raise StillSending(view)


async def _first_answer(
    session: AsyncSession, claim: idempotency.Claim, now: datetime, view: PublicPage
) -> tuple[idempotency.Answered, BookingCreated] | None:
    """The answer of the first send of the form once it has committed, with the booking it made
    as it is now (cancelled since, moved...) and the token that answer showed once; None if it
    failed (and stored nothing).

    The first send holds the key's lock for as long as its transaction runs, so this waits on
    that lock itself, not by polling: on PostgreSQL the key's advisory lock (the create's read
    takes it, services/idempotency.py), under a lock_timeout; on SQLite the write lock every
    transaction takes at BEGIN (db/engine.py), which the first send holds until it commits, so
    its answer is there once this transaction begins. The booking is shown as a read shows it
    (services/bookings/reading.py `current`: its due automatic action applied)."""
    async with session.begin():
        conn = await session.connection()
        if conn.dialect.name == "postgresql":
            await conn.execute(text(f"SET LOCAL lock_timeout = '{_WAIT}'"))
            try:
                await idempotency.wait_for(conn, claim)
            except DatabaseBusy:  # its lock_timeout (55P03, db/engine.py `unavailable`)
                raise IdempotencyKeyInFlight(idempotency.IN_FLIGHT) from None
            # the wait's bound only: the booking's own lock (below) is waited for as a read does
            await conn.execute(text("SET LOCAL lock_timeout = DEFAULT"))
        answered = await idempotency.answered(conn, claim, now=now)
        if answered is None:
            return None
        first = BookingCreated.model_validate_json(answered.answer.body)
        # As `GET /v1/bookings/{id}` shows it: an automatic action due since (a request nobody
        # answered before it began expires, an unpaid hold times out) applied first. Before,
        # the replay showed the booking as stored, "Waiting" for a request that had expired.
        row = await reading.current(session, view.app_id, first.booking_id, now=now)
        now_shown = booking_out(row, now=now).model_dump()  # the visitor: the public key
        return answered, BookingCreated(**now_shown, customer_token=first.customer_token)
