"""The manage link, `/manage/{token}`: the customer's own booking, and the changes its graph and
its page's notice rules allow. The rules are domain/customers.py's, applied by the same services
as `Authorization: Bearer ct_...` on the API (changing.apply_action, changing.modify_booking), so
the page and the API can never disagree.

A booking made through the API (no page) is shown with its resources' names, in its `locale`
(English without one), and rescheduled on its own resources. The times offered leave out the
booking's own holds (it may move into time only it holds: 10:00-11:00 to 10:30-11:30), and so
does the move: it replaces its holds in one transaction, so only other bookings (the constraint)
can refuse it. If the new time is taken, the booking keeps its old one (TimeTaken, with the
nearest free times).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.appsettings import AppSettings
from slotgraph.db.models import App, BookingPage, Resource
from slotgraph.domain.customers import Change, allowed_changes, deadline
from slotgraph.domain.graphs import GRAPHS
from slotgraph.errors import NotFound, SlotUnavailable, ValidationFailed
from slotgraph.locales import available_locales
from slotgraph.page_schemas import PageFields, PageOut
from slotgraph.schemas import ActionBody, BookingOut, BookingUpdate
from slotgraph.services import customer_tokens
from slotgraph.services import page_bookings as pb
from slotgraph.services.bookings import changing, reading
from slotgraph.services.common import Principal
from slotgraph.services.pages import PublicPage, ResourceInfo, public_view
from slotgraph.services.views import booking_out_for

_LONG_AGO = timedelta(days=365 * 300)


@dataclass(frozen=True)
class Managed:
    """What the manage page shows: the booking, its page, and what the customer may do."""

    booking: BookingOut
    view: PublicPage  # the booking's page, or one made of its resources (API bookings)
    changes: list[Change]  # allowed now
    closed: dict[Change, datetime]  # allowed by the graph, but the notice has passed: since when

    @property
    def length(self) -> timedelta:
        return self.booking.end_time - self.booking.start_time

    @property
    def language_open(self) -> bool:
        """Whether its language may change: in any state but a final one (modify_booking's
        rule); no notice closes it (domain/customers.py LANGUAGE_FIELDS)."""
        return not GRAPHS[self.booking.graph].is_final(self.booking.status)


async def _principal(session: AsyncSession, token: str) -> Principal:
    principal = await customer_tokens.principal_for_token(session, token)
    if principal is None or principal.booking_id is None:
        raise NotFound("This link is not valid (or no longer).")
    return principal


def _api_page(booking: BookingOut, resources: list[ResourceInfo]) -> PageOut:
    """A page for a booking made without one: its resources, its length, no notice."""
    return PageOut(
        page_id=booking.booking_id,
        slug="",
        url="",
        title=", ".join(r.name for r in resources) or "Booking",
        description=None,
        resource_ids=[r.resource_id for r in resources],
        mode="all" if len(resources) > 1 else "any",
        durations=[booking.end_time - booking.start_time],
        graph=booking.graph,
        fields=PageFields(),
        locale=booking.locale or "en",
        timezone=None,
        min_cancel_notice=timedelta(0),
        min_reschedule_notice=timedelta(0),
        reminder=None,
        version=1,
        created_at=booking.created_at,
        updated_at=booking.updated_at,
    )


async def open_booking(session: AsyncSession, *, token: str, now: datetime) -> Managed:
    """The booking the token opens, read as of `now` (due automatic actions applied first)."""
    principal = await _principal(session, token)
    assert principal.booking_id is not None
    async with session.begin():
        row = await reading.current(session, principal.app_id, principal.booking_id, now=now)
        notices = await customer_tokens.notices_for(session, row)
        booking = booking_out_for(principal, row, now=now, notices=notices)
        if row.page_id is not None:
            view = await public_view(session, await session.get(BookingPage, row.page_id), "")
        else:
            view = await _api_view(session, principal, booking)
    held = set(booking.resource_ids)
    own = [r for r in view.resources if r.resource_id in held]
    # The page speaks the booking's language: its page's at first, then what the customer chose.
    page = view.page.model_copy(
        update={
            "mode": "all" if len(own) > 1 else "any",
            "locale": booking.locale or view.page.locale,
        }
    )
    # A reschedule stays on the same resources, and the booking's own time is free to it.
    view = replace(view, page=page, resources=own, moving=booking.booking_id)
    start = booking.start_time
    changes = allowed_changes(
        graph=booking.graph, status=booking.status, start=start, now=now, notices=notices
    )
    possible = allowed_changes(
        graph=booking.graph,
        status=booking.status,
        start=start,
        now=start - _LONG_AGO,
        notices=notices,
    )
    closed = {
        c: deadline(c, start=booking.start_time, notices=notices)
        for c in possible
        if c not in changes
    }
    return Managed(booking, view, changes, closed)


async def _api_view(session: AsyncSession, principal: Principal, booking: BookingOut) -> PublicPage:
    app = await session.get(App, principal.app_id)
    assert app is not None
    rows = (
        await session.execute(
            select(Resource.id, Resource.name, Resource.timezone).where(
                Resource.id.in_(booking.resource_ids)
            )
        )
    ).all()
    by_id = {r.id: ResourceInfo(r.id, r.name, r.timezone) for r in rows}
    resources = [by_id[i] for i in booking.resource_ids if i in by_id]
    return PublicPage(
        page=_api_page(booking, resources),
        app_id=principal.app_id,
        settings=AppSettings.model_validate(app.settings or {}),
        resources=resources,
    )


async def cancel(session: AsyncSession, *, token: str, now: datetime) -> BookingOut:
    """`cancel_by_customer`, if the graph and the notice allow it (else 409)."""
    principal = await _principal(session, token)
    assert principal.booking_id is not None
    return await changing.apply_action(
        session,
        principal=principal,
        booking_id=principal.booking_id,
        action="cancel_by_customer",
        body=ActionBody(),
        now=now,
    )


class NoSuchLanguage(ValidationFailed):
    """422 (the error page): the form named no language the pages speak. Its detail is the
    visitor's sentence alone (translated on the page), not "locale: ..."."""

    MESSAGE = "Choose a language from the page."

    def __init__(self) -> None:
        super().__init__([("locale", self.MESSAGE)])
        self.detail = self.MESSAGE


async def change_language(
    session: AsyncSession, *, token: str, locale: str | None, now: datetime
) -> BookingOut:
    """The language of this page and of the customer's emails: one the pages speak (a
    catalogue), set as the API's `PUT /v1/bookings/{id} {"locale": ...}` with the token sets it."""
    if locale not in available_locales():
        raise NoSuchLanguage()
    principal = await _principal(session, token)
    assert principal.booking_id is not None
    return await changing.modify_booking(
        session,
        principal=principal,
        booking_id=principal.booking_id,
        data=BookingUpdate(locale=locale),
        now=now,
    )


async def reschedule_week(
    session: AsyncSession, *, token: str, tz: str | None, week_of: str | None, now: datetime
) -> tuple[Managed, pb.Week]:
    """The booking and a week of free times of its length on its resources."""
    managed = await open_booking(session, token=token, now=now)
    zone = pb.zone_or(tz, managed.view.zone)
    week = await pb.week_for(
        session, managed.view, tz=zone, week_of=week_of, duration=managed.length, now=now
    )
    return managed, week


async def reschedule_choice(
    session: AsyncSession, *, token: str, start: str | None, tz: str | None, now: datetime
) -> tuple[Managed, pb.Offer, str]:
    """The new time picked, if it is free (else TimeTaken with the nearest free times)."""
    managed = await open_booking(session, token=token, now=now)
    zone = pb.zone_or(tz, managed.view.zone)
    offer = await pb.still_free(
        session, managed.view, start=start, duration=managed.length, seat=None, tz=zone, now=now
    )
    return managed, offer, zone


async def reschedule(
    session: AsyncSession, *, token: str, start: str | None, tz: str | None, now: datetime
) -> BookingOut:
    """Move the booking to `start` (same length, same resources) in one transaction: a time
    taken meanwhile leaves the booking where it was and raises TimeTaken."""
    managed = await open_booking(session, token=token, now=now)
    principal = await _principal(session, token)
    at = pb.parse_start(start, managed.length)
    if at is None:
        raise NotFound("Choose a time from the page.")
    zone = pb.zone_or(tz, managed.view.zone)
    try:
        return await changing.modify_booking(
            session,
            principal=principal,
            booking_id=managed.booking.booking_id,
            data=BookingUpdate(start_time=at, end_time=at + managed.length),
            now=now,
        )
    except SlotUnavailable as exc:
        nearest = await pb.nearest(
            session, managed.view, around=at, duration=managed.length, tz=zone, now=now
        )
        raise pb.TimeTaken(managed.view, zone, nearest) from exc
