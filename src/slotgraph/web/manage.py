"""`/manage/{token}`: the customer's manage link (issue 12). Each route calls one service of
services/page_manage.py; what is offered is what domain/customers.py allows, nothing more.

- GET  /manage/{token}                     the booking, and the changes allowed now
- GET  /manage/{token}/booking.ics         "add to calendar"
- POST /manage/{token}/cancel              cancel_by_customer (CSRF), then back to the booking
- POST /manage/{token}/language            the page's and the emails' language (CSRF)
- GET  /manage/{token}/reschedule          a week of free times of the same length
- GET  /manage/{token}/reschedule/time     confirm the new time (`?start=&tz=`)
- POST /manage/{token}/reschedule          move it (CSRF); "just taken" keeps the old time
"""

from __future__ import annotations

from urllib.parse import urlencode

from babel import Locale
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from slotgraph.api.deps import Now, Session
from slotgraph.domain.availability import iso
from slotgraph.domain.graphs import GRAPHS
from slotgraph.errors import Conflict
from slotgraph.i18n import N_, available_locales, catalogue_for
from slotgraph.notifications.ics import CONTENT_TYPE, booking_ics
from slotgraph.services import page_bookings as pb
from slotgraph.services import page_manage as pm
from slotgraph.web.book import links, page_context, public_base, show, taken_page, week_context
from slotgraph.web.forms import read_form
from slotgraph.web.routing import WebRoute
from slotgraph.web.security import check_csrf

router = APIRouter(route_class=WebRoute, include_in_schema=False)

DONE = {
    "cancelled": N_("Your booking is cancelled."),
    "rescheduled": N_("Your booking has been moved to the new time."),
    "language": N_("This page and your emails are now in the language you chose."),
}
# The languages offered, each named in itself ("Deutsch", "English"): the pages' catalogues.
LANGUAGES = [
    (code, Locale.parse(code).get_display_name(code) or code) for code in available_locales()
]


def _manage_page(
    request: Request,
    managed: pm.Managed,
    token: str,
    *,
    message: str | None = None,
    status_code: int = 200,
) -> Response:
    view = managed.view
    page_context(request, view)
    tz = pb.zone_or(request.query_params.get("tz"), view.zone)
    return show(
        request,
        view,
        "manage.html",
        {
            "managed": managed,
            "booking": managed.booking,
            "base": f"/manage/{token}",
            "manage_url": f"{public_base(request)}/manage/{token}",
            "done": DONE.get(request.query_params.get("done", "")),
            "message": message,
            "languages": LANGUAGES,
            "language": catalogue_for(view.page.locale),
        },
        tz,
        status_code=status_code,
    )


@router.get("/manage/{token}")
async def manage(request: Request, token: str, session: Session, now: Now) -> Response:
    managed = await pm.open_booking(session, token=token, now=now)
    return _manage_page(request, managed, token)


@router.get("/manage/{token}/booking.ics")
async def calendar_file(request: Request, token: str, session: Session, now: Now) -> Response:
    """ "Add to calendar": the booking as an .ics (the emails' UID, so calendars update it)."""
    managed = await pm.open_booking(session, token=token, now=now)
    page_context(request, managed.view)
    booking = managed.booking
    cancelled = not GRAPHS[booking.graph].holds_in(booking.status) and booking.status != "completed"
    zones = managed.view.resource_zones
    body = booking_ics(
        booking,
        "CANCEL" if cancelled else "PUBLISH",
        summary=managed.view.page.title,
        timezone=zones[0] if zones else managed.view.zone,
        locale=managed.view.page.locale,
    )
    return Response(
        body,
        media_type=f"{CONTENT_TYPE}; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="booking.ics"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


@router.post("/manage/{token}/cancel")
async def cancel(request: Request, token: str, session: Session, now: Now) -> Response:
    check_csrf(request, await read_form(request))
    try:
        await pm.cancel(session, token=token, now=now)
    except Conflict as refused:  # the notice passed, or the booking changed meanwhile
        managed = await pm.open_booking(session, token=token, now=now)
        return _manage_page(request, managed, token, message=refused.detail, status_code=409)
    return RedirectResponse(f"/manage/{token}?done=cancelled", status_code=303)


@router.post("/manage/{token}/language")
async def language(request: Request, token: str, session: Session, now: Now) -> Response:
    form = await read_form(request)
    check_csrf(request, form)
    try:
        await pm.change_language(session, token=token, locale=form.get("locale"), now=now)
    except Conflict as refused:  # the booking ended meanwhile
        managed = await pm.open_booking(session, token=token, now=now)
        return _manage_page(request, managed, token, message=refused.detail, status_code=409)
    return RedirectResponse(f"/manage/{token}?done=language", status_code=303)


@router.get("/manage/{token}/reschedule")
async def reschedule_week(request: Request, token: str, session: Session, now: Now) -> Response:
    q = request.query_params
    managed, week = await pm.reschedule_week(
        session, token=token, tz=q.get("tz"), week_of=q.get("week"), now=now
    )
    if "reschedule" not in managed.changes:
        return _manage_page(request, managed, token, status_code=409)
    page_context(request, managed.view)
    template = "_week.html" if q.get("fragment") == "week" else "reschedule.html"
    context = week_context(request, week, f"/manage/{token}/reschedule")
    context |= {"booking": managed.booking, "back": f"/manage/{token}", "choose_duration": False}
    return show(request, managed.view, template, context, week.tz)


@router.get("/manage/{token}/reschedule/time")
async def reschedule_time(request: Request, token: str, session: Session, now: Now) -> Response:
    q = request.query_params
    base = f"/manage/{token}/reschedule"
    try:
        managed, offer, tz = await pm.reschedule_choice(
            session, token=token, start=q.get("start"), tz=q.get("tz"), now=now
        )
    except pb.TimeTaken as taken:
        return taken_page(request, taken, base)
    page_context(request, managed.view)
    return show(
        request,
        managed.view,
        "reschedule_time.html",
        {
            "booking": managed.booking,
            "offer": offer,
            "duration": managed.length,
            "action": base,
            "back": links(base, managed.length, tz)["week_link"](offer.start.date()),
            "iso": iso,
        },
        tz,
    )


@router.post("/manage/{token}/reschedule")
async def reschedule(request: Request, token: str, session: Session, now: Now) -> Response:
    form = await read_form(request)
    check_csrf(request, form)
    try:
        await pm.reschedule(
            session, token=token, start=form.get("start"), tz=form.get("tz"), now=now
        )
    except pb.TimeTaken as taken:
        return taken_page(request, taken, f"/manage/{token}/reschedule")
    except Conflict as refused:
        managed = await pm.open_booking(session, token=token, now=now)
        return _manage_page(request, managed, token, message=refused.detail, status_code=409)
    query = urlencode({"done": "rescheduled", "tz": form.get("tz", "")})
    return RedirectResponse(f"/manage/{token}?{query}", status_code=303)
