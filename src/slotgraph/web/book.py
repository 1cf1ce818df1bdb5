"""`/book/{slug}`: the public booking page (issue 12). Each route calls one service of
services/page_bookings.py and renders one template; no booking rule lives here.

- GET  /book/{slug}             the week of free times (`?tz=`, `?week=`, `?duration=`);
                                `&fragment=week` answers only the week, for booking.js.
- GET  /book/{slug}/time        the form for a chosen time (`?start=&duration=&tz=[&seat=]`).
- POST /book/{slug}             book it (CSRF); the confirmation, the form again, "just taken",
                                or "already sent with other details" (the booking it made).
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from slotgraph.api.deps import Now, Session
from slotgraph.domain.availability import iso
from slotgraph.errors import IdempotencyKeyInFlight
from slotgraph.i18n import N_
from slotgraph.schemas import BookingOut
from slotgraph.services import page_answers as pa
from slotgraph.services import page_bookings as pb
from slotgraph.services.page_once import SentBefore, StillSending, new_submission
from slotgraph.services.pages import PublicPage
from slotgraph.web.forms import read_form
from slotgraph.web.routing import WebRoute
from slotgraph.web.security import check_csrf
from slotgraph.web.templating import render
from slotgraph.web.zones import zone_choices

router = APIRouter(route_class=WebRoute, include_in_schema=False)

# What the form's error codes say, per code (services/page_bookings.py check_answers).
FORM_ERRORS = {
    pa.REQUIRED: N_("Please fill in this field."),
    pa.EMAIL: N_("Please enter a valid email address, like name@example.com."),
    pa.TOO_LONG: N_("This is too long."),
    pa.CONTROL: N_("Please write this on one line, without special characters."),
}
# The form's first send was still being written after the wait (services/page_once.py).
STILL_SENDING = N_(
    "This form is still being sent. Wait a moment, then reload this page to see your booking."
)


def page_context(request: Request, view: PublicPage) -> None:
    """Errors from here on are shown in the page's language, embeddable where it is."""
    request.state.web_locale = view.page.locale
    request.state.web_frame_ancestors = view.settings.allowed_origins


def show(
    request: Request,
    view: PublicPage,
    template: str,
    context: dict[str, Any],
    tz: str,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        template,
        {"page": view.page, "view": view, "tz": tz, **context},
        locale=view.page.locale,
        tz=view.tz(tz),
        frame_ancestors=view.settings.allowed_origins,
        status_code=status_code,
    )


def links(base: str, duration: timedelta, tz: str) -> dict[str, Any]:
    """The links of a week of times: `base` shows a week, `base/time` a chosen time."""

    def time_link(offer: pb.Offer) -> str:
        query = {"start": offer.start.isoformat().replace("+00:00", "Z")}
        query |= {"duration": iso(duration), "tz": tz}
        if offer.seat is not None:
            query["seat"] = str(offer.seat)
        return f"{base}/time?{urlencode(query)}"

    def week_link(monday: date) -> str:
        return (
            f"{base}?{urlencode({'week': monday.isoformat(), 'duration': iso(duration), 'tz': tz})}"
        )

    return {"time_link": time_link, "week_link": week_link, "week_action": base}


def week_context(request: Request, week: pb.Week, base: str) -> dict[str, Any]:
    """What book.html, reschedule.html and the `_week.html` fragment show."""
    view = week.page
    return {
        "week": week,
        "tz_chosen": bool(request.query_params.get("tz")),
        "zones": zone_choices(week.tz, view.zone, view.resource_zones),
        "iso": iso,
        **links(base, week.duration, week.tz),
    }


@router.get("/book/{slug}")
async def booking_page(request: Request, slug: str, session: Session, now: Now) -> Response:
    q = request.query_params
    week = await pb.week(
        session,
        slug=slug,
        tz=q.get("tz"),
        week_of=q.get("week"),
        duration=q.get("duration"),
        now=now,
    )
    page_context(request, week.page)
    template = "_week.html" if q.get("fragment") == "week" else "book.html"
    context = week_context(request, week, f"/book/{slug}")
    return show(request, week.page, template, {**context, "choose_duration": True}, week.tz)


@router.get("/book/{slug}/time")
async def chosen_time(request: Request, slug: str, session: Session, now: Now) -> Response:
    q = request.query_params
    try:
        view, offer, tz = await pb.chosen(
            session,
            slug=slug,
            start=q.get("start"),
            duration=q.get("duration"),
            seat=q.get("seat"),
            tz=q.get("tz"),
            now=now,
        )
    except pb.TimeTaken as taken:
        return taken_page(request, taken)
    page_context(request, view)
    return _form(request, view, offer, tz, pa.Answers(), errors={}, submission=new_submission())


@router.post("/book/{slug}")
async def book(request: Request, slug: str, session: Session, now: Now) -> Response:
    form = await read_form(request)
    check_csrf(request, form)
    answers = pa.Answers.from_form(form)
    try:
        view, booking = await pb.book(
            session,
            slug=slug,
            start=form.get("start"),
            duration=form.get("duration"),
            seat=form.get("seat"),
            tz=form.get("tz"),
            answers=answers,
            now=now,
            submission=form.get("submission"),
        )
    except pb.TimeTaken as taken:
        return taken_page(request, taken)
    except StillSending as sending:
        page_context(request, sending.view)
        raise IdempotencyKeyInFlight(STILL_SENDING) from None  # in the visitor's words
    except SentBefore as sent:
        view, booking = sent.view, sent.first
        page_context(request, view)
        return _booked(request, view, booking, form.get("tz"), "sent_before.html", 422)
    except pb.FormInvalid as bad:
        page_context(request, bad.view)
        length = pb.duration_or(form.get("duration"), bad.view.page.durations)
        start = pb.parse_start(form.get("start"), length)
        if start is None:
            raise
        offer = pb.Offer(start, start + length, _seat(form.get("seat")))
        errors = {name: FORM_ERRORS[code] for name, code in bad.errors}
        submission = form.get("submission") or new_submission()  # nothing was booked with it
        return _form(request, bad.view, offer, bad.tz, answers, errors, submission, 422)
    page_context(request, view)
    return _booked(request, view, booking, form.get("tz"), "confirmation.html", 201)


def _booked(
    request: Request,
    view: PublicPage,
    booking: BookingOut,
    tz: str | None,
    template: str,
    status_code: int,
) -> Response:
    """A booking the form made, with its manage link: the confirmation, or the page that says
    the form was sent before with other details (the booking that first send made)."""
    token = getattr(booking, "customer_token", None)
    return show(
        request,
        view,
        template,
        {
            "booking": booking,
            "manage": f"/manage/{token}" if token else None,
            "manage_url": f"{public_base(request)}/manage/{token}" if token else None,
            "again": f"/book/{view.page.slug}",
        },
        pb.zone_or(tz, view.zone),
        status_code=status_code,
    )


def public_base(request: Request) -> str:
    """Where visitors reach this server: SLOTGRAPH_PUBLIC_URL, or the request's own."""
    configured = request.app.state.settings.public_url
    return str(configured or request.base_url).rstrip("/")


def _seat(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value or "")
    except ValueError:
        return None


def _form(
    request: Request,
    view: PublicPage,
    offer: pb.Offer,
    tz: str,
    answers: pa.Answers,
    errors: dict[str, str],
    submission: str,
    status_code: int = 200,
) -> Response:
    length = offer.end - offer.start
    return show(
        request,
        view,
        "form.html",
        {
            "offer": offer,
            "duration": length,
            "iso": iso,
            "answers": answers,
            "errors": errors,
            "submission": submission,
            "back": links(f"/book/{view.page.slug}", length, tz)["week_link"](offer.start.date()),
        },
        tz,
        status_code=status_code,
    )


def taken_page(request: Request, taken: pb.TimeTaken, base: str | None = None) -> Response:
    page_context(request, taken.view)
    base = base or f"/book/{taken.view.page.slug}"
    duration = (
        taken.nearest[0].end - taken.nearest[0].start
        if taken.nearest
        else taken.view.page.durations[0]
    )
    return show(
        request,
        taken.view,
        "taken.html",
        {
            "nearest": taken.nearest,
            "back": f"{base}?{urlencode({'tz': taken.tz})}",
            **links(base, duration, taken.tz),
        },
        taken.tz,
        status_code=409,
    )
