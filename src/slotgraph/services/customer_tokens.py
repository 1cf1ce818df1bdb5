"""Booking tokens: secret links to one booking (ADR 0009).

A token is a prefix and 256 random bits; only its SHA-256 is stored (`booking_tokens`), so a
copy of the database opens no booking. A `ct_` token is the customer's: the create answer
carries one (`customer_token`), and every email to the customer carries a fresh one in its
manage link, minted when the email is rendered. An `ot_` token is the owner's, in the email
that asks them to confirm or decline a request. Tokens are never logged: callers log the
booking id.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.appsettings import AppSettings
from slotgraph.db.models import (
    BOOKING_TOKENS,
    App,
    Booking,
    BookingPage,
    BookingToken,
    Client,
    Resource,
)
from slotgraph.db.queries import NewRow
from slotgraph.domain.customers import (
    NO_NOTICE,
    Change,
    Notices,
    check_action,
    check_fields,
    check_may_move,
    check_new_time,
    check_notice,
    moves,
)
from slotgraph.errors import Forbidden, NotFound
from slotgraph.schemas import ActionBody, BookingOut
from slotgraph.services.common import Principal
from slotgraph.services.views import booking_out, booking_out_for

TokenKind = Literal["customer", "owner"]
PREFIX: dict[TokenKind, str] = {"customer": "ct_", "owner": "ot_"}
CUSTOMER_PREFIX = PREFIX["customer"]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(kind: TokenKind) -> str:
    return PREFIX[kind] + secrets.token_urlsafe(32)  # 256 random bits


def token_row(
    kind: TokenKind, *, booking_id: uuid.UUID, app_id: uuid.UUID, now: datetime
) -> tuple[str, NewRow]:
    """A new token and its row, for the caller to write in its transaction."""
    token = new_token(kind)
    row = {
        "token_hash": digest(token),
        "booking_id": booking_id,
        "app_id": app_id,
        "kind": kind,
        "created_at": now,
    }
    return token, (BOOKING_TOKENS, row)


def mint(
    session: AsyncSession,
    *,
    kind: TokenKind,
    booking_id: uuid.UUID,
    app_id: uuid.UUID,
    now: datetime,
) -> str:
    """Add a new token of an existing booking to the session (written at its next flush)."""
    token = new_token(kind)
    session.add(
        BookingToken(
            token_hash=digest(token),
            booking_id=booking_id,
            app_id=app_id,
            kind=kind,
            created_at=now,
        )
    )
    return token


async def booking_for_token(
    session: AsyncSession, token: str, *, kind: TokenKind = "customer"
) -> Booking | None:
    """The booking a token opens, or None (unknown, malformed, or of the other kind)."""
    if not token.startswith(PREFIX[kind]) or len(token) > 100:
        return None
    return await session.scalar(
        select(Booking)
        .join(BookingToken, BookingToken.booking_id == Booking.id)
        .where(BookingToken.token_hash == digest(token), BookingToken.kind == kind)
    )


async def principal_for_token(session: AsyncSession, token: str) -> Principal | None:
    """The caller a customer token stands for: the booking's app, limited to that booking."""
    if not token.startswith(CUSTOMER_PREFIX) or len(token) > 100:
        return None
    async with session.begin():
        row = (
            await session.execute(
                select(BookingToken.booking_id, BookingToken.app_id, App.settings)
                .join(App, App.id == BookingToken.app_id)
                .where(BookingToken.token_hash == digest(token), BookingToken.kind == "customer")
            )
        ).first()
    if row is None:
        return None
    return Principal(
        app_id=row.app_id,
        key_id=None,
        kind="customer",
        settings=AppSettings.model_validate(row.settings or {}),
        booking_id=row.booking_id,
    )


async def notices_for(session: AsyncSession, booking: Booking) -> Notices:
    """The notices that close the customer's changes of this booking: those of the booking
    page it was made on (min_cancel_notice, min_reschedule_notice; none for the API's), and a
    seat's class's min_cancel_time."""
    notices = NO_NOTICE
    if booking.page_id is not None:
        row = (
            await session.execute(
                select(BookingPage.min_cancel_notice, BookingPage.min_reschedule_notice).where(
                    BookingPage.id == booking.page_id
                )
            )
        ).first()
        if row is not None:
            notices = Notices(cancel=row[0], reschedule=row[1])
    if booking.owner_booking_id is not None:
        seat_cancel = await session.scalar(
            select(Booking.min_cancel_time).where(Booking.id == booking.owner_booking_id)
        )
        notices = replace(notices, seat_cancel=seat_cancel)
    return notices


async def shown(
    session: AsyncSession, principal: Principal, booking: Booking, *, now: datetime
) -> BookingOut:
    """The booking as `principal` may see it now (views.booking_out_for), in the caller's
    transaction: a customer token's answer offers `cancel_by_customer` only while its notices
    allow it (domain/customers.py may_cancel, which the action is checked by)."""
    if principal.kind != "customer":
        return booking_out(booking, now=now)
    return booking_out_for(principal, booking, now=now, notices=await notices_for(session, booking))


# -- what a customer principal may do: called by the services under the booking's lock ---------


def check_booking(principal: Principal, booking_id: uuid.UUID) -> None:
    """A customer token sees its own booking only: any other is 404, as for another app's."""
    if principal.kind == "customer" and principal.booking_id != booking_id:
        raise NotFound(f"No booking {booking_id}.")


async def check_change(
    session: AsyncSession,
    principal: Principal,
    booking: Booking,
    *,
    action: str | None = None,
    fields: set[str] | None = None,
    to: tuple[datetime, datetime] | None = None,
    now: datetime,
) -> None:
    """A customer's action (`action`) or change (`fields`, the booking going `to` a new start
    and end): allowed, and a cancel or reschedule before its notice? The language alone is no
    reschedule: no time or notice rule. Nothing to check for an API key."""
    if principal.kind != "customer":
        return
    check_booking(principal, booking.id)
    change: Change
    if action is not None:
        check_action(action)
        change = "cancel"
    else:
        check_fields(fields or set())
        if not moves(fields or set()):
            return
        check_may_move(booking.graph, booking.status)
        if to is not None:
            check_new_time(old=(booking.start_time, booking.end_time), new=to, now=now)
        change = "reschedule"
    notices = await notices_for(session, booking)
    check_notice(change, start=booking.start_time, now=now, notices=notices)


# -- the owner's decision on a request (web/owner.py) --------------------------------------------

OWNER_ACTIONS = ("confirm", "decline")


@dataclass(frozen=True)
class OwnerView:
    booking: BookingOut
    resource_name: str
    timezone: str
    customer_name: str | None
    customer_email: str | None
    actions: list[str]  # what the owner may do now: confirm and decline while it is a request


async def owner_view(session: AsyncSession, *, token: str, now: datetime) -> OwnerView:
    """The request an owner token opens (404 for an unknown token). Reading changes nothing."""
    async with session.begin():
        booking = await booking_for_token(session, token, kind="owner")
        if booking is None:
            raise NotFound("This link is not valid.")
        resource = await session.get(Resource, booking.resource_id)
        client = await session.get(Client, booking.client_id) if booking.client_id else None
        assert resource is not None
        shown = booking_out(booking, now=now)
        return OwnerView(
            booking=shown,
            resource_name=resource.name,
            timezone=resource.timezone,
            customer_name=client.name if client else None,
            customer_email=client.email if client else None,
            actions=[a for a in OWNER_ACTIONS if a in shown.available_actions],
        )


async def owner_decide(
    session: AsyncSession, *, token: str, action: str, now: datetime
) -> BookingOut:
    """Confirm or decline the request an owner token opens, as the app would (the graph and
    the slot are checked as for the secret key); anything else is 403."""
    if action not in OWNER_ACTIONS:
        raise Forbidden("This link may only confirm or decline the request.")
    async with session.begin():
        booking = await booking_for_token(session, token, kind="owner")
        if booking is None:
            raise NotFound("This link is not valid.")
        app = await session.get(App, booking.app_id)
        assert app is not None
        principal = Principal(
            app_id=booking.app_id,
            key_id=None,
            kind="secret",
            settings=AppSettings.model_validate(app.settings or {}),
        )
        booking_id = booking.id
    from slotgraph.services.bookings import changing  # (changing imports this module)

    return await changing.apply_action(
        session,
        principal=principal,
        booking_id=booking_id,
        action=action,
        body=ActionBody(message="From the owner's email link."),
        now=now,
        if_match="*",
    )
