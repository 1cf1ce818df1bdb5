"""Creating a booking: the hot path of the API (ADR 0005)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from slotgraph.db import driver_sql, queries
from slotgraph.db.models import NewBooking, new_id
from slotgraph.domain.customers import remind_at
from slotgraph.domain.graphs import GRAPHS, PAYMENT_GRAPHS, Occupies
from slotgraph.domain.rules import (
    check_start_for_key,
)
from slotgraph.domain.shape import booking_shape_errors
from slotgraph.errors import NotFound, SlotgraphError, ValidationFailed
from slotgraph.schemas import BookingCreate, BookingCreated
from slotgraph.services import access, customer_tokens, idempotency, project_bookings
from slotgraph.services.bookings import lifecycle, placing
from slotgraph.services.clients import find_or_create_customer, load_client
from slotgraph.services.common import Principal
from slotgraph.services.outbox import record_change
from slotgraph.services.views import booking_out, created_json

DEFAULT_PAYMENT_TIMEOUT = timedelta(minutes=5)
# How the caller answers with a new booking: from the booking as its creator may see it, and
# that as JSON (api/routes/bookings.py).
Answer = Callable[[BookingCreated, str], idempotency.Stored]


async def create_booking(
    session: AsyncSession,
    *,
    principal: Principal,
    data: BookingCreate,
    now: datetime,
    page_id: uuid.UUID | None = None,
) -> BookingCreated:
    """Validate, lock, check and write a new booking; return it as its creator may see it.

    The hot path of the API, so it is written for few round trips (ADR 0005): one statement
    locks the resource(s) and checks the client, and one writes the booking, its holds, its
    history row and its event. On PostgreSQL a single resource is not checked for overlaps
    first: the exclusion constraint is the check. When it refuses, the booking is tried once
    more with the check, which says why and times out unpaid holds past their deadline.

    On PostgreSQL, one resource and no inline customer (the common case) go first without a
    transaction of their own: one unlocked read, and one statement that locks the resource,
    checks that it did not change since the read, and writes everything (ADR 0005). If it did
    change, nothing was written, and the booking takes the locked way.

    `page_id`: the booking page it is made through (services/page_bookings.py). `data.locale`
    (given on the API, the page's on a page) is what the customer's emails speak
    (notifications/).
    """
    made = await _made(session, principal, data, now, page_id, None)
    return made.shown


async def create_answered(
    session: AsyncSession,
    *,
    principal: Principal,
    data: BookingCreate,
    now: datetime,
    answer: Answer,
    page_id: uuid.UUID | None = None,
) -> idempotency.Stored:
    """create_booking on the API: `answer` makes the HTTP answer from the new booking and its
    JSON, which is rendered once, for the answer and the event. In a request with an
    Idempotency-Key (services/idempotency.py `Keyed`) the create looks the key up in its read
    and stores that answer in its write, or raises KeyTaken. (A booking page's form is such a
    request too: services/page_once.py.)"""
    made = await _made(session, principal, data, now, page_id, answer)
    assert made.answered is not None
    return made.answered


@dataclass(frozen=True, slots=True)
class _Made:
    """A new booking as its creator may see it, and the caller's answer if it gave `answer`."""

    shown: BookingCreated
    answered: idempotency.Stored | None


async def _made(
    session: AsyncSession,
    principal: Principal,
    data: BookingCreate,
    now: datetime,
    page_id: uuid.UUID | None,
    answer: Answer | None,
) -> _Made:
    try:
        access.check_booking(principal, data)
        if principal.kind != "secret":  # a project's name on it (the /v2 widget's)
            await project_bookings.check_public_booking(session, principal=principal, data=data)
        # Its fields as they are (extra="forbid": nothing else there); dict(data) iterates the
        # model, 5.8 us of a create's CPU for the same mapping (docs/benchmarks.md, eighth pass).
        errors = booking_shape_errors(data.graph, data.__dict__)
        if errors:
            raise ValidationFailed(errors)
        if data.start_time is not None:
            check_start_for_key(key_kind=principal.kind, start=data.start_time, now=now)
    except SlotgraphError:
        # A keyed request sent again (a retry, a reload of a page's form) after its start has
        # passed: its answer is replayed, as it would be had the create got as far as its read.
        # Looked up here, on the refusal's way only: a create that passes pays nothing for it.
        keyed = idempotency.keyed(session) if answer is not None else None
        if keyed is not None and await idempotency.is_answered(session, keyed.claim, now=now):
            raise idempotency.KeyTaken from None
        raise
    origin = _Origin(page_id, data.locale)
    return await _create_checked(session, principal, data, now, origin, answer)


@dataclass(frozen=True, slots=True)
class _Origin:
    """Where a booking was made: its booking page (None: on the API), and its locale."""

    page_id: uuid.UUID | None
    locale: str | None


async def _create_checked(
    session: AsyncSession,
    principal: Principal,
    data: BookingCreate,
    now: datetime,
    origin: _Origin,
    answer: Answer | None,
) -> _Made:
    try:
        if not queries.has_exclusion_constraint(session):
            return await _create(
                session, principal, data, now, origin, check_overlap=True, answer=answer
            )
        try:
            if _optimistic(session, data):
                try:
                    return await _create(
                        session,
                        principal,
                        data,
                        now,
                        origin,
                        check_overlap=False,
                        lock=False,
                        answer=answer,
                    )
                except queries.RowChanged:
                    pass
            return await _create(
                session, principal, data, now, origin, check_overlap=False, answer=answer
            )
        except lifecycle.RefusedByConstraint as refused:
            if len(refused.holds) == 1:
                await _explain(session, refused.holds[0], now)
            return await _create(
                session, principal, data, now, origin, check_overlap=True, answer=answer
            )
    except queries.ClaimTaken:
        raise idempotency.KeyTaken from None


async def _explain(session: AsyncSession, hold: lifecycle.Span, now: datetime) -> None:
    """The constraint refused a booking's one hold: if what holds that time blocks it plainly
    (a booking that is not an overdue payment hold, or a block), say so now, without a lock
    (SlotUnavailable). Otherwise the create is retried the locked way, which times out the
    overdue holds. Answered under the resource's lock, every loser of a race for one slot
    queued for that lock, each holding a pooled connection, and under load the last ones timed
    out waiting for one (503 instead of 409; docs/benchmarks.md)."""
    async with session.begin():
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        await lifecycle.check_free(session, *hold, now=now, exclude=None, settle=False)


def _optimistic(session: AsyncSession, data: BookingCreate) -> bool:
    """One resource, no inline customer (it may write a client first), not a seat; and a
    session of the engine's, not one joined to a request's transaction (api/idempotency.py)."""
    return (
        isinstance(session.bind, AsyncEngine)
        and data.resource_id is not None
        and not data.resource_ids
        and data.customer is None
        and GRAPHS[data.graph].occupies is not Occupies.SEAT
    )


async def _create(
    session: AsyncSession,
    principal: Principal,
    data: BookingCreate,
    now: datetime,
    origin: _Origin,
    *,
    check_overlap: bool,
    lock: bool = True,
    answer: Answer | None = None,
) -> _Made:
    """One attempt. `lock=False` (see create_booking): no transaction and no lock of its own;
    the write checks the resource's version and raises queries.RowChanged if it moved on.
    `answer`, in a request with an Idempotency-Key (services/idempotency.py `Keyed`): the read
    looks for the key, and the write stores the answer with the booking (queries.ClaimTaken if
    the key is taken, and nothing is written)."""
    graph = GRAPHS[data.graph]
    keyed = idempotency.keyed(session) if answer is not None else None
    async with _attempt(session, optimistic=not lock) as optimistic:
        booking_id = new_id()
        client_id = data.client_id
        if data.customer is not None:
            client = await find_or_create_customer(
                session, app_id=principal.app_id, customer=data.customer, now=now
            )
            client_id = client.id
        holds: list[queries.NewRow] = []
        unchanged: queries.Unchanged | None = None
        resource_ids = owner_booking_id = None
        if graph.occupies is Occupies.SEAT:
            assert data.owner_booking_id is not None
            if data.client_id is not None:
                await _check_client(session, principal.app_id, data.client_id)
            owner = await placing.take_seat(
                session, principal.app_id, data.owner_booking_id, now=now
            )
            owner_booking_id = owner.id
            resource_id, start, end = owner.resource_id, owner.start_time, owner.end_time
        else:
            assert data.start_time
            assert data.end_time
            placed = await placing.place_new(
                session,
                principal,
                data,
                booking_id=booking_id,
                holds_now=graph.holds_in(graph.initial),
                now=now,
                check_overlap=check_overlap,
                optimistic=optimistic,
                probe=None
                if keyed is None
                else keyed.probe(postgresql=queries.has_exclusion_constraint(session), now=now),
            )
            resource_id, resource_ids = placed.resource_id, placed.resource_ids
            holds, unchanged = placed.holds, placed.unchanged
            start, end = data.start_time, data.end_time
        group = graph.name == "group_owner"
        booking = NewBooking(
            id=booking_id,
            app_id=principal.app_id,
            graph=graph.name,
            status=graph.initial,
            resource_id=resource_id,
            resource_ids=resource_ids,
            client_id=client_id,
            start_time=start,
            end_time=end,
            details=data.details,
            meta=data.meta,
            payment_due_at=now + (data.payment_timeout or DEFAULT_PAYMENT_TIMEOUT)
            if graph.name in PAYMENT_GRAPHS
            else None,
            payment_id=None,
            max_seats=data.max_seats if group else None,
            seats_taken=0 if group else None,
            min_cancel_time=data.min_cancel_time if group else None,
            min_booking_time=data.min_booking_time if group else None,
            max_booking_time=data.max_booking_time if group else None,
            owner_booking_id=owner_booking_id,
            auto_complete=data.auto_complete,
            page_id=origin.page_id,
            notify=data.notify,
            reminder=data.reminder,
            locale=origin.locale,
            remind_at=remind_at(start=start, reminder=data.reminder, now=now),
            version=1,
            created_at=now,
            updated_at=now,
        )
        token, token_rows = None, []
        if client_id is not None:  # the customer's: shown once, in this answer
            token, row = customer_tokens.token_row(
                "customer", booking_id=booking_id, app_id=principal.app_id, now=now
            )
            token_rows.append(row)
        published = booking_out(booking, now=now)
        rendered = published.model_dump_json()  # once: for the event and the answer
        # (the fields from __dict__: iterating a model, as dict() does, costs more than this)
        created = BookingCreated(**published.__dict__, customer_token=token)
        shown = access.booking_answer(principal, created)
        stored = claim = None
        if answer is not None:
            stored = answer(
                shown,
                created_json(rendered, token) if shown is created else shown.model_dump_json(),
            )
            if keyed is not None:
                claim = (keyed.answer_row(stored, now=now), idempotency.replace_expired)
        async with lifecycle.slot_guard(holds):
            await record_change(
                session,
                booking,
                action="create",
                from_status=None,
                now=now,
                actor_key_id=principal.key_id,
                meta={"override_rules": True} if data.override_rules else None,
                new_rows=[booking.row(), *holds, *token_rows],
                unless_changed=unchanged,
                published=rendered,
                claim=claim,
                optimistic=optimistic,
            )
    if keyed is not None:
        keyed.answered = stored
    return _Made(shown, stored)


@asynccontextmanager
async def _attempt(
    session: AsyncSession, *, optimistic: bool
) -> AsyncIterator[driver_sql.Autocommit | None]:
    """Where one attempt runs: the session's transaction; or, `optimistic`, a pooled connection
    of the session's engine without a transaction (driver_sql.autocommit): each statement
    commits by itself, no BEGIN and no COMMIT round trip, and the only write is one statement,
    so it is still all or nothing. Without the session's transaction around them the two
    statements cost 142-149 us of CPU less (docs/benchmarks.md, ninth pass)."""
    if not optimistic:
        async with session.begin():
            yield None
        return
    assert isinstance(session.bind, AsyncEngine), "optimistic: a session of the engine's"
    async with driver_sql.autocommit(session.bind) as on:
        yield on


async def _check_client(session: AsyncSession, app_id: uuid.UUID, client_id: uuid.UUID) -> None:
    try:
        await load_client(session, app_id, client_id)
    except NotFound:
        raise ValidationFailed.one("client_id", "no such client") from None
