"""A booking as an iCalendar object for the customer's calendar (RFC 5545/5546).

The same VEVENT as the feeds and CalDAV pushes (calendars/ical.py): `UID` is the booking id for
its whole life and `SEQUENCE` its version minus one, so a calendar program updates the event it
has instead of adding a second one. `METHOD:REQUEST` while the booking stands, `METHOD:CANCEL`
when it is cancelled or declined. Times are UTC; the resource's zone is named (X-WR-TIMEZONE,
and in the description, in the customer's locale: the same sentence as the booking page's).
"""

from __future__ import annotations

from typing import Literal

from slotgraph import i18n
from slotgraph.calendars.ical import PRODID, BookingEvent, booking_vevent
from slotgraph.schemas import BookingOut

IcsMethod = Literal["REQUEST", "CANCEL", "PUBLISH"]
CONTENT_TYPE = "text/calendar"


def booking_ics(
    booking: BookingOut,
    method: IcsMethod,
    *,
    summary: str,
    timezone: str,
    location: str | None = None,
    organizer: str | None = None,
    organizer_name: str | None = None,
    attendee: str | None = None,
    attendee_name: str | None = None,
    description: str | None = None,
    locale: str = i18n.DEFAULT_LOCALE,
) -> bytes:
    """One booking as a calendar with `method`. `PUBLISH` suits a download ("add to
    calendar"); emails use REQUEST and CANCEL, which name an organizer and the attendee."""
    from icalendar import Calendar, vCalAddress, vText  # by the first .ics (calendars/ical.py)

    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    cal.add("x-wr-timezone", timezone)
    event = booking_vevent(
        BookingEvent(
            booking_id=booking.booking_id,
            start=booking.start_time,
            end=booking.end_time,
            status=booking.status,
            version=booking.version,
            details=booking.details,
            created_at=booking.created_at,
            updated_at=booking.updated_at,
        ),
        shows_details=False,
        cancelled=method == "CANCEL",
    )
    event["summary"] = vText(summary)
    lines = [description] if description else []
    gettext = i18n.translations(locale).gettext
    lines.append(gettext("Times are shown in %(zone)s.") % {"zone": timezone})
    event["description"] = vText("\n".join(lines))
    if location:
        event.add("location", location)
    if organizer:
        address = vCalAddress(f"mailto:{organizer}")
        if organizer_name:
            address.params["cn"] = vText(organizer_name)
        event["organizer"] = address
    if attendee:
        address = vCalAddress(f"mailto:{attendee}")
        if attendee_name:
            address.params["cn"] = vText(attendee_name)
        address.params["role"] = vText("REQ-PARTICIPANT")
        address.params["partstat"] = vText("DECLINED" if method == "CANCEL" else "ACCEPTED")
        event.add("attendee", address, encode=False)
    cal.add_component(event)
    return bytes(cal.to_ical())
