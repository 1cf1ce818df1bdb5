"""Rules a booking must satisfy beyond its graph's table. Pure: `now` is passed in."""

from __future__ import annotations

from datetime import datetime, timedelta

from slotgraph.errors import BookingWindowClosed, CancelWindowClosed, InThePast


def check_start_for_key(*, key_kind: str, start: datetime, now: datetime) -> None:
    """The public key never books a start that has passed, whatever the resource's rules.

    (The secret key may: a back office records walk-ins, imports and corrections.)
    """
    if key_kind != "secret" and start < now:
        raise InThePast("The start time has passed.")


def check_booking_window(
    *,
    start: datetime,
    now: datetime,
    min_booking_time: timedelta | None,
    max_booking_time: timedelta | None,
) -> None:
    """A seat may be taken in [start - max_booking_time, start - min_booking_time]."""
    closes = start - (min_booking_time or timedelta(0))
    if now > closes:
        raise BookingWindowClosed(
            f"Seats for this class could be booked until {closes.isoformat()}.",
            closes_at=closes.isoformat(),
        )
    if max_booking_time is not None:
        opens = start - max_booking_time
        if now < opens:
            raise BookingWindowClosed(
                f"Seats for this class can be booked from {opens.isoformat()}.",
                opens_at=opens.isoformat(),
            )


def check_cancel_window(
    *, start: datetime, now: datetime, min_cancel_time: timedelta | None
) -> None:
    """A customer may cancel a seat until start - min_cancel_time."""
    deadline = start - (min_cancel_time or timedelta(0))
    if now > deadline:
        raise CancelWindowClosed(
            f"This booking could be cancelled by the customer until {deadline.isoformat()}.",
            deadline=deadline.isoformat(),
        )


def payment_overdue(*, status: str, payment_due_at: datetime | None, now: datetime) -> bool:
    """A payment hold past its deadline: it blocks nobody and can only time out."""
    return status == "tentative" and payment_due_at is not None and payment_due_at <= now


def request_expired(*, graph: str, status: str, start: datetime, now: datetime) -> bool:
    """A confirm_decline request nobody answered before it started."""
    return graph == "confirm_decline" and status == "tentative" and start <= now
