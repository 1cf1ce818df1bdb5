"""iCalendar rendering (RFC 5545) with the `icalendar` library. Pure: no I/O, no clock.

A booking is the same VEVENT wherever it goes (the feed, a CalDAV push): `UID` is the booking
id, `SEQUENCE` rises with each change (the booking's version), `DTSTAMP` is its last change.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from slotgraph import __version__

# icalendar (with dateutil) is imported by the first feed, push or .ics, not by every server and
# worker at its start: most never render one (docs/testing.md).
if TYPE_CHECKING:
    from icalendar import Calendar, Event

PRODID = f"-//slotgraph//slotgraph {__version__}//EN"
BUSY = "Busy"
SUMMARY_MAX = 200


@dataclass(frozen=True, slots=True)
class BookingEvent:
    """What a VEVENT shows of a booking."""

    booking_id: uuid.UUID
    start: datetime
    end: datetime
    status: str  # the booking's state
    version: int
    details: str | None
    created_at: datetime
    updated_at: datetime


def _calendar(name: str | None = None) -> Calendar:
    from icalendar import Calendar

    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if name:
        cal.add("x-wr-calname", name)
    return cal


def ical_status(state: str) -> str:
    """RFC 5545 STATUS of a booking state: tentative states are TENTATIVE, others CONFIRMED."""
    if state in ("cancelled", "declined"):
        return "CANCELLED"
    return "TENTATIVE" if state == "tentative" else "CONFIRMED"


def booking_vevent(b: BookingEvent, *, shows_details: bool, cancelled: bool = False) -> Event:
    from icalendar import Event

    event = Event()
    event.add("uid", str(b.booking_id))
    event.add("dtstamp", b.updated_at)
    event.add("created", b.created_at)
    event.add("last-modified", b.updated_at)
    event.add("dtstart", b.start)
    event.add("dtend", b.end)
    event.add("sequence", max(b.version - 1, 0))
    event.add("status", "CANCELLED" if cancelled else ical_status(b.status))
    event.add("transp", "OPAQUE")
    summary = BUSY
    if shows_details and b.details:
        summary = b.details.strip().splitlines()[0][:SUMMARY_MAX] or BUSY
        event.add("description", b.details)
    event.add("summary", summary)
    return event


def feed(
    name: str, bookings: Iterable[BookingEvent], *, shows_details: bool, refresh_minutes: int
) -> bytes:
    """A subscription calendar of a resource's holding bookings."""
    cal = _calendar(name)
    cal.add(
        "refresh-interval", timedelta(minutes=refresh_minutes), parameters={"VALUE": "DURATION"}
    )
    cal.add("x-published-ttl", f"PT{refresh_minutes}M")
    for b in bookings:
        cal.add_component(booking_vevent(b, shows_details=shows_details))
    return bytes(cal.to_ical())


def single_event(b: BookingEvent, *, shows_details: bool, cancelled: bool = False) -> bytes:
    """One booking as a calendar object resource (what a CalDAV PUT sends)."""
    cal = _calendar()
    cal.add_component(booking_vevent(b, shows_details=shows_details, cancelled=cancelled))
    return bytes(cal.to_ical())


@dataclass(frozen=True, slots=True)
class BusyOf:
    resource_id: uuid.UUID
    email: str | None
    busy: Sequence[tuple[datetime, datetime]]


def freebusy(
    resources: Iterable[BusyOf], *, start: datetime, end: datetime, stamp: datetime
) -> bytes:
    """One VFREEBUSY per resource (RFC 5545 3.6.4), busy periods in UTC."""
    from icalendar import FreeBusy

    cal = _calendar()
    cal.add("method", "PUBLISH")
    for r in resources:
        fb = FreeBusy()
        fb.add("uid", f"{r.resource_id}-{start:%Y%m%dT%H%M%SZ}-{end:%Y%m%dT%H%M%SZ}")
        fb.add("dtstamp", stamp)
        fb.add("dtstart", start)
        fb.add("dtend", end)
        fb.add("x-slotgraph-resource-id", str(r.resource_id))
        if r.email:
            fb.add("attendee", f"mailto:{r.email}")
        if r.busy:
            fb.add("freebusy", list(r.busy), parameters={"FBTYPE": "BUSY"})
        cal.add_component(fb)
    return bytes(cal.to_ical())
