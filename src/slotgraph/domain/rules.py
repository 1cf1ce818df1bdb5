"""Rules a booking must satisfy beyond its graph's table, and when a timer of the table is due.

Pure: `now` is passed in. A rule that queries also need is written here twice, side by side: in
Python and as a SQLAlchemy expression over the columns the caller passes in (no database access).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Interval, String, and_, literal_column

from slotgraph.domain.availability import rfc3339
from slotgraph.domain.graphs import PAYMENT_TIMEOUT, Graph, Timer
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
            f"Seats for this class could be booked until {rfc3339(closes)}.",
            closes_at=rfc3339(closes),
        )
    if max_booking_time is not None:
        opens = start - max_booking_time
        if now < opens:
            raise BookingWindowClosed(
                f"Seats for this class can be booked from {rfc3339(opens)}.",
                opens_at=rfc3339(opens),
            )


def cancel_window_open(
    *, start: datetime, now: datetime, min_cancel_time: timedelta | None
) -> bool:
    """Whether a seat's class still lets its customer cancel (`cancel_by_customer`) now."""
    return now <= start - (min_cancel_time or timedelta(0))


def check_cancel_window(
    *, start: datetime, now: datetime, min_cancel_time: timedelta | None
) -> None:
    """A customer may cancel a seat until start - min_cancel_time (that moment included)."""
    if not cancel_window_open(start=start, now=now, min_cancel_time=min_cancel_time):
        deadline = start - (min_cancel_time or timedelta(0))
        raise CancelWindowClosed(
            f"This booking could be cancelled by the customer until {rfc3339(deadline)}.",
            deadline=rfc3339(deadline),
        )


def timer_due(timer: Timer, booking: Any, now: datetime) -> bool:
    """Is `timer` due on `booking` (anything with the booking's fields as attributes)?"""
    if booking.status != timer.state:
        return False
    if timer.unless_false is not None and not getattr(booking, timer.unless_false):
        return False
    moment: datetime | None = getattr(booking, timer.at)
    return moment is not None and moment + timer.after <= now


def timer_due_sql(
    timer: Timer, bookings: Any, now: Any, *, written: bool = False
) -> ColumnElement[bool]:
    """`timer_due` as a WHERE clause over `bookings`: the mapped class, an alias, or `table.c`.

    `written`: the timer's own constants (its state, its delay) are written into the SQL instead
    of sent as parameters, so that a plan PostgreSQL makes once for a prepared statement (a
    generic plan) can still use the partial index on them (services/merged_busy.py)."""
    moment = getattr(bookings, timer.at)
    state: Any = timer.state
    due: Any = now - timer.after
    if written:
        assert timer.state.isidentifier(), timer.state
        seconds, rest = divmod(timer.after, timedelta(seconds=1))
        assert not rest, timer.after
        state = literal_column(f"'{timer.state}'", String())
        due = now - literal_column(f"interval '{seconds} seconds'", Interval()) if seconds else now
    clauses = [bookings.status == state, moment.is_not(None), moment <= due]
    if timer.unless_false is not None:
        clauses.append(getattr(bookings, timer.unless_false).is_(True))
    return and_(*clauses)


def due_timer(
    graph: Graph, booking: Any, now: datetime, *, automatic: bool = False
) -> Timer | None:
    """The first of `graph`'s timers that is due on `booking` now, if any.

    `automatic`: only timers whose action is automatic (timeout, expire). Those change what a
    booking holds or allows, so any request that meets one due applies it first.
    """
    for timer in graph.timers:
        if automatic and not graph.is_automatic(timer.state, timer.action):
            continue
        if timer_due(timer, booking, now):
            return timer
    return None


def actions_now(graph: Graph, booking: Any, now: datetime) -> list[str]:
    """The actions a request may apply to `booking` now, as every answer offers them
    (`available_actions`, the owner's buttons): none while an automatic timer is due on it,
    for a request that tries one applies the timer first and answers with that instead
    (`payment_expired`, `invalid_action`: services/bookings/changing.py). Before, a read that
    found the booking held by another transaction showed it as it stood, with `pay` offered
    on a payment hold past its deadline, and the owner's page offered to confirm a request
    that had expired; each try was refused."""
    if due_timer(graph, booking, now, automatic=True) is not None:
        return []
    return graph.manual_actions(booking.status)


def payment_overdue(*, status: str, payment_due_at: datetime | None, now: datetime) -> bool:
    """A payment hold past its deadline: it holds nothing and can only time out."""
    return timer_due(PAYMENT_TIMEOUT, _Fields(status, payment_due_at), now)


def payment_overdue_sql(bookings: Any, now: Any, *, written: bool = False) -> ColumnElement[bool]:
    """`payment_overdue` as a WHERE clause over `bookings` (see `timer_due_sql`)."""
    return timer_due_sql(PAYMENT_TIMEOUT, bookings, now, written=written)


@dataclass(frozen=True)
class _Fields:
    status: str
    payment_due_at: datetime | None
