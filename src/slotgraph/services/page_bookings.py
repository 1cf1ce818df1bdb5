"""A booking page's public side: a week of free times, and booking one with the page's form.

web/book.py calls these; every rule is the services' own: times come from the availability search
(services/availability.py) and a booking is made by create_booking, as the visitor's public key
would make it. A time taken in the meantime is `TimeTaken`, carrying the nearest free times.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.bounds import in_range
from slotgraph.domain import wallclock as wc
from slotgraph.domain.availability import iso
from slotgraph.errors import NotFound, SeatsFull, SlotUnavailable, ValidationFailed
from slotgraph.schemas import BookingCreate, BookingOut, Customer
from slotgraph.schemas.fields import known_zone
from slotgraph.services import availability, page_once, page_seats
from slotgraph.services.page_answers import REQUIRED, Answers, check_answers
from slotgraph.services.pages import PublicPage, public_page

WEEK = timedelta(days=7)
NEAREST = 6  # free times offered when the chosen one was just taken
LOOK_AHEAD = 4  # weeks a page looks ahead for its first free time when none is asked for


@dataclass(frozen=True)
class Offer:
    """A free time: its start and end (UTC); `seat` is the class a group_customer page books."""

    start: datetime
    end: datetime
    seat: uuid.UUID | None = None


@dataclass(frozen=True)
class Day:
    on: date  # in the visitor's zone
    offers: list[Offer]


@dataclass(frozen=True)
class Week:
    page: PublicPage
    tz: str
    duration: timedelta
    monday: date
    days: list[Day]
    earlier: date | None  # the week before, unless it has passed entirely
    later: date


class TimeTaken(SlotUnavailable):
    """The chosen time was taken by someone else; `nearest` are free times close to it."""

    def __init__(self, view: PublicPage, tz: str, nearest: list[Offer]) -> None:
        super().__init__("This time was just taken.")
        self.view = view
        self.tz = tz
        self.nearest = nearest


class FormInvalid(ValidationFailed):
    """The form's answers break the page's rules: (field, code) pairs, and the page."""

    def __init__(self, errors: list[tuple[str, str]], view: PublicPage, tz: str) -> None:
        super().__init__(errors)
        self.view = view
        self.tz = tz


# -- reading a page's query -----------------------------------------------------------------------


def zone_or(value: str | None, default: str) -> str:
    """An IANA zone the visitor asked for, or `default` when it is missing or unknown."""
    return value if value and known_zone(value) is not None else default


def duration_or(value: str | None, choices: Sequence[timedelta]) -> timedelta:
    """One of the page's durations, by ISO 8601 ("PT30M") or minutes ("30"); else the first."""
    for d in choices:
        if value in (iso(d), str(int(d.total_seconds() // 60))):
            return d
    return choices[0]


def monday_of(value: str | None, tz: str, now: datetime) -> date:
    """The Monday of the week that contains `value` (YYYY-MM-DD), or of today in `tz`."""
    today = now.astimezone(ZoneInfo(tz)).date()
    try:
        on = date.fromisoformat(value) if value else today
    except ValueError:
        on = today
    if not date(1900, 1, 8) <= on <= date(2199, 12, 24):
        on = today
    return on - timedelta(days=on.weekday())


def parse_start(value: str | None, length: timedelta = timedelta(0)) -> datetime | None:
    """An instant from a link or form ("2024-05-03T12:00:00Z"); None when unreadable, or when
    a booking of `length` from it would end outside the accepted dates (bounds.py)."""
    if not value or len(value) > 40:
        return None
    try:
        at = datetime.fromisoformat(value.replace(" ", "+"))
    except ValueError:
        return None
    if at.tzinfo is None or not in_range(at) or not in_range(at + length):
        return None
    return at.astimezone(UTC)


# -- free times -----------------------------------------------------------------------------------


async def _offers(
    session: AsyncSession,
    view: PublicPage,
    *,
    start: datetime,
    end: datetime,
    duration: timedelta,
    tz: str,
    now: datetime,
) -> list[Offer]:
    """Free times starting in [start, end) that the visitor may still book (not before now)."""
    ids = [r.resource_id for r in view.resources]
    if not ids or end <= start:
        return []
    principal = view.principal()
    if view.page.graph == "group_customer":
        classes = await availability.groups(
            session, principal=principal, resource_ids=ids, start=start, end=end, now=now
        )
        return [
            Offer(c.start_time, c.end_time, c.booking_id) for c in classes if c.start_time >= now
        ]
    if end - start < duration:  # late on a Sunday: no time of this length fits (search: 422)
        return []
    query = availability.SlotSearch(
        resource_ids=ids,
        start=start,
        end=end,
        duration=duration,
        mode=view.page.mode,
        timezone=tz,
        ignore_booking=view.moving,
    )
    found = await availability.search(
        session,
        principal=principal,
        query=query,
        limit=availability.largest_limit(len(ids)),
        now=now,
    )
    return [
        Offer(s.start_time.astimezone(UTC), s.end_time.astimezone(UTC))
        for s in found
        if s.start_time >= now
    ]


async def week(
    session: AsyncSession,
    *,
    slug: str,
    tz: str | None,
    week_of: str | None,
    duration: str | None,
    now: datetime,
) -> Week:
    """The page and its free times for one week (Monday to Sunday in the visitor's zone)."""
    view = await public_page(session, slug=slug)
    length = duration_or(duration, view.page.durations)
    return await week_for(
        session, view, tz=zone_or(tz, view.zone), week_of=week_of, duration=length, now=now
    )


async def week_for(
    session: AsyncSession,
    view: PublicPage,
    *,
    tz: str,
    week_of: str | None,
    duration: timedelta,
    now: datetime,
) -> Week:
    """A page's free times of `duration` for the week containing `week_of`. Without `week_of`,
    this week, or the first of the next few that has a free time (this one, if none has)."""
    monday = monday_of(week_of, tz, now)
    found = await _week(session, view, tz=tz, monday=monday, duration=duration, now=now)
    ahead = 0
    while week_of is None and not any(d.offers for d in found.days) and ahead < LOOK_AHEAD:
        ahead += 1
        later = await _week(
            session, view, tz=tz, monday=monday + ahead * WEEK, duration=duration, now=now
        )
        if any(d.offers for d in later.days):
            return later
    return found


async def _week(
    session: AsyncSession,
    view: PublicPage,
    *,
    tz: str,
    monday: date,
    duration: timedelta,
    now: datetime,
) -> Week:
    start = wc.instant(wc.day(tz, monday).start)
    end = wc.instant(wc.day(tz, monday + WEEK).start)
    offers = await _offers(
        session, view, start=max(start, now), end=end, duration=duration, tz=tz, now=now
    )
    by_day: dict[date, list[Offer]] = {monday + timedelta(days=i): [] for i in range(7)}
    local = ZoneInfo(tz)
    for offer in offers:
        by_day.setdefault(offer.start.astimezone(local).date(), []).append(offer)
    return Week(
        page=view,
        tz=tz,
        duration=duration,
        monday=monday,
        days=[Day(on, by_day[on]) for on in sorted(by_day) if monday <= on < monday + WEEK],
        earlier=monday - WEEK if monday > monday_of(None, tz, now) else None,
        later=monday + WEEK,
    )


async def nearest(
    session: AsyncSession,
    view: PublicPage,
    *,
    around: datetime,
    duration: timedelta,
    tz: str,
    now: datetime,
    count: int = NEAREST,
) -> list[Offer]:
    """Up to `count` free times closest to `around` (within a week either side), by time."""
    start = max(now, around - WEEK)
    offers = await _offers(
        session, view, start=start, end=around + WEEK, duration=duration, tz=tz, now=now
    )
    closest = sorted(offers, key=lambda o: abs(o.start - around))[:count]
    return sorted(closest, key=lambda o: o.start)


async def chosen(
    session: AsyncSession,
    *,
    slug: str,
    start: str | None,
    duration: str | None,
    seat: str | None,
    tz: str | None,
    now: datetime,
) -> tuple[PublicPage, Offer, str]:
    """The time a visitor picked, if it is still free: the page, the offer, the visitor's zone.
    A time no longer free (or never offered) is TimeTaken, with the nearest free times."""
    view = await public_page(session, slug=slug)
    zone = zone_or(tz, view.zone)
    length = duration_or(duration, view.page.durations)
    offer = await still_free(
        session, view, start=start, duration=length, seat=seat, tz=zone, now=now
    )
    return view, offer, zone


async def still_free(
    session: AsyncSession,
    view: PublicPage,
    *,
    start: str | None,
    duration: timedelta,
    seat: str | None,
    tz: str,
    now: datetime,
) -> Offer:
    """The offer at `start` if it is free now; else TimeTaken with the nearest free times."""
    at = parse_start(start, duration)
    if at is None:
        raise NotFound("Choose a time from the page.")
    offers = await _offers(
        session, view, start=at, end=at + duration, duration=duration, tz=tz, now=now
    )
    for offer in offers:
        if offer.start == at and (view.page.graph != "group_customer" or str(offer.seat) == seat):
            return offer
    raise TimeTaken(
        view, tz, await nearest(session, view, around=at, duration=duration, tz=tz, now=now)
    )


# -- booking --------------------------------------------------------------------------------------


async def book(
    session: AsyncSession,
    *,
    slug: str,
    start: str | None,
    duration: str | None,
    seat: str | None,
    tz: str | None,
    answers: Answers,
    now: datetime,
    submission: str | None = None,
) -> tuple[PublicPage, BookingOut]:
    """Book the chosen time with the form's answers, as the page says (resources, mode, graph).

    Bad answers are FormInvalid with (field, code) pairs; a time taken meanwhile is
    TimeTaken with the nearest free times; anything else the create path refuses is its error.
    The form's `submission` books once however often it is sent (services/page_once.py); sent
    again with other details, it is page_once.SentBefore.
    """
    view = await public_page(session, slug=slug)
    page = view.page
    zone = zone_or(tz, view.zone)
    length = duration_or(duration, page.durations)
    at = parse_start(start, length)
    errors = check_answers(view, answers)
    if at is None:
        errors.append(("start", REQUIRED))
    if errors:
        raise FormInvalid(errors, view, zone)
    assert at is not None
    fields = page.fields
    ids = [r.resource_id for r in view.resources]
    if not ids:
        raise NotFound("This page has nothing to book right now.")
    data = BookingCreate(
        graph=page.graph,
        customer=Customer(
            name=answers.name,
            email=answers.email,
            phone=(answers.phone or None) if fields.phone != "off" else None,
            timezone=zone,
        ),
        details=(answers.notes or None) if fields.notes != "off" else None,
        meta={"fields": {f.key: answers.custom.get(f.key, "") for f in fields.custom}}
        if fields.custom
        else {},
        reminder=page.reminder,
        locale=page.locale,
        **_where(page.graph, page.mode, ids, at, length, seat),
    )
    if data.owner_booking_id is not None:  # a class the page shows, at the time chosen
        starts = await page_seats.class_start(
            session, app_id=view.app_id, resource_ids=ids, seat=data.owner_booking_id
        )
        if starts is None:
            raise NotFound("Choose a time from the page.")
        if starts != at:
            near = await nearest(session, view, around=at, duration=length, tz=zone, now=now)
            raise TimeTaken(view, zone, near)
    try:
        created = await page_once.create_once(
            session, view=view, data=data, now=now, submission=submission
        )
    except (SlotUnavailable, SeatsFull) as exc:  # a class's last seat is a taken time too
        raise TimeTaken(
            view, zone, await nearest(session, view, around=at, duration=length, tz=zone, now=now)
        ) from exc
    return view, created


def _where(
    graph: str,
    mode: str,
    ids: list[uuid.UUID],
    at: datetime,
    length: timedelta,
    seat: str | None,
) -> dict[str, object]:
    """The booking's place in time: a seat of a class, one resource, or the page's pool."""
    if graph == "group_customer":
        try:
            return {"owner_booking_id": uuid.UUID(seat or "")}
        except ValueError:
            raise ValidationFailed.one("start", REQUIRED) from None
    span = {"start_time": at, "end_time": at + length}
    if len(ids) == 1:
        return {"resource_id": ids[0], **span}
    return {"resource_ids": ids, "assign": "all" if mode == "all" else "in_order", **span}
