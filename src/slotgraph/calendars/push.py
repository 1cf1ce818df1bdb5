"""The calendar push channel's render and send: one booking event -> one CalDAV PUT or DELETE.

The object is `<booking id>.ics` in the connected calendar, with the same VEVENT as the feed
(UID = booking id, SEQUENCE = version - 1) marked `X-SLOTGRAPH-BOOKING-ID`, so a pull never
takes it for busy time from outside. A booking that no longer holds this resource (cancelled,
declined, expired, completed, moved to another resource) is deleted. Both are idempotent, so a
retry after a worker died mid-send changes nothing twice.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from slotgraph.calendars import ical, remote
from slotgraph.calendars.pull import CONNECTION_MARK, PUSHED_MARK
from slotgraph.domain.deliveries import Outcome
from slotgraph.webhooks.ssrf import UrlNotAllowed, check_url


@dataclass(frozen=True)
class PushTarget:
    account: remote.Account
    app_id: uuid.UUID  # whose turn at the CalDAV threads (remote.PER_APP)
    resource_id: uuid.UUID
    shows_details: bool
    connection_id: uuid.UUID | None = None  # marked on what it pushes (CONNECTION_MARK)


def render(booking: dict[str, Any], target: PushTarget) -> bytes | None:
    """The calendar object for this state of the booking; None: it must not be there."""
    held = booking.get("holds") and str(target.resource_id) in booking.get("resource_ids", [])
    if not held:
        return None
    event = ical.BookingEvent(
        booking_id=uuid.UUID(booking["booking_id"]),
        start=datetime.fromisoformat(booking["start_time"]),
        end=datetime.fromisoformat(booking["end_time"]),
        status=booking["status"],
        version=int(booking["version"]),
        details=booking.get("details"),
        created_at=datetime.fromisoformat(booking["created_at"]),
        updated_at=datetime.fromisoformat(booking["updated_at"]),
    )
    from icalendar import Calendar  # imported by ical.single_event above

    cal = Calendar.from_ical(ical.single_event(event, shows_details=target.shows_details))
    for vevent in cal.walk("VEVENT"):
        vevent.add(PUSHED_MARK.lower(), booking["booking_id"])
        if target.connection_id is not None:
            vevent.add(CONNECTION_MARK.lower(), str(target.connection_id))
    return bytes(cal.to_ical())


async def send(
    payload: str, target: PushTarget, *, allow_private: bool, deadline: float | None = None
) -> Outcome:
    """One booking event's PUT or DELETE, within `deadline` seconds (each read's timeout too)
    when given: the delivery's lease must outlast it (syncer.py `push`)."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    booking = orjson.loads(payload)["data"]["booking"]
    name = f"{booking['booking_id']}.ics"
    try:
        await check_url(target.account.url, allow_private=allow_private)
    except UrlNotAllowed as exc:
        return Outcome(None, f"refused: {exc}", took(), None)
    body = render(booking, target)
    try:
        if body is None:
            await remote.call(
                target.app_id,
                remote.delete_event,
                target.account,
                name,
                allow_private=allow_private,
                deadline=deadline,
            )
            return Outcome(204, None, took(), f"DELETE {name}")
        url = await remote.call(
            target.app_id,
            remote.put_event,
            target.account,
            name,
            body,
            allow_private=allow_private,
            deadline=deadline,
        )
        return Outcome(201, None, took(), f"PUT {url}"[:2048])
    except remote.RemoteError as exc:
        return Outcome(None, f"{exc.kind}: {exc}"[:500], took(), None)


async def remove(
    target: PushTarget, *, allow_private: bool, deadline: float | None = None
) -> Outcome:
    """A disconnect's removal (services/calendar_removals.py): delete every event the
    connection pushed to the calendar. Idempotent, as a push is: one already gone counts as
    removed."""
    started = time.monotonic()
    try:
        await check_url(target.account.url, allow_private=allow_private)
        removed = await remote.call(
            target.app_id,
            remote.remove_pushed,
            target.account,
            connection_id=target.connection_id,
            allow_private=allow_private,
            deadline=deadline,
        )
    except UrlNotAllowed as exc:
        return Outcome(None, f"refused: {exc}", int((time.monotonic() - started) * 1000), None)
    except remote.RemoteError as exc:
        took = int((time.monotonic() - started) * 1000)
        return Outcome(None, f"{exc.kind}: {exc}"[:500], took, None)
    took = int((time.monotonic() - started) * 1000)
    return Outcome(204, None, took, f"removed {removed} pushed events")
