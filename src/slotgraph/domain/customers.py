"""What a customer (the holder of a booking's customer token) may do, and until when. Pure.

A customer token opens exactly one booking: read it, cancel it (`cancel_by_customer`, where its
graph has that action), reschedule it (a new time on the same resource) and choose the language
of its emails (`locale`). A notice (from the booking page the booking was made on, or none)
closes a cancel or a reschedule that long before the start; the language moves nothing, so no
notice closes it. A time the owner confirmed (a request, `confirm_decline`) is not the
customer's to move.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from slotgraph.domain.graphs import GRAPHS, Occupies
from slotgraph.domain.rules import cancel_window_open, check_start_for_key
from slotgraph.errors import Conflict, Forbidden, ValidationFailed

CUSTOMER_ACTIONS = frozenset({"cancel_by_customer"})
# The fields of a booking a customer may change: its time (a reschedule), and the language its
# emails speak (LANGUAGE_FIELDS: no reschedule, so no notice or new-time rule applies to it).
TIME_FIELDS = frozenset({"start_time", "end_time"})
LANGUAGE_FIELDS = frozenset({"locale"})
CUSTOMER_FIELDS = TIME_FIELDS | LANGUAGE_FIELDS
Change = Literal["cancel", "reschedule"]


class NoticePassed(Conflict):
    code = "notice_passed"
    title = "Too late to change this booking"


class ConfirmedByOwner(Conflict):
    code = "confirmed_by_owner"
    title = "The owner confirmed this time"


def owner_agreed(graph: str, status: str) -> bool:
    """Whether the owner agreed to the booking's time: in a graph whose bookings start as a
    request the owner confirms (`confirm` from the first state: `confirm_decline`), any state
    past the request. Such a time is not the customer's to move: the owner confirmed that
    one, and hears of new bookings and requests only."""
    g = GRAPHS[graph]
    return g.transition(g.initial, "confirm") is not None and status != g.initial


def check_may_move(graph: str, status: str) -> None:
    if owner_agreed(graph, status):
        raise ConfirmedByOwner(
            "The owner confirmed this time; only they can move it. Cancel the booking and "
            "send a new request for another time."
        )


@dataclass(frozen=True, slots=True)
class Notices:
    """How long before the start a customer may still cancel or reschedule (None: until the
    start): the booking page's notices; and for a seat, its class's `min_cancel_time`
    (`seat_cancel`), which closes `cancel_by_customer` for every key (rules.check_cancel_window,
    409 `cancel_window_closed`)."""

    cancel: timedelta | None = None
    reschedule: timedelta | None = None
    seat_cancel: timedelta | None = None


NO_NOTICE = Notices()


def customer_actions(
    actions: list[str], *, start: datetime, now: datetime, notices: Notices
) -> list[str]:
    """Of the actions a booking's state offers (`actions_now`), those its customer token may
    apply now: what its answers list as `available_actions`. A cancel is offered while
    `may_cancel`, the rule the action is checked by: before, it was listed past the notice
    and refused, 409 `notice_passed`."""
    return [
        a
        for a in actions
        if a in CUSTOMER_ACTIONS
        and (a != "cancel_by_customer" or may_cancel(start=start, now=now, notices=notices))
    ]


def check_action(action: str) -> None:
    if action not in CUSTOMER_ACTIONS:
        raise Forbidden(
            f"A customer token may apply only {', '.join(sorted(CUSTOMER_ACTIONS))}; "
            f"{action!r} needs the secret key."
        )


def check_fields(fields: set[str]) -> None:
    extra = sorted(fields - CUSTOMER_FIELDS)
    if extra:
        raise Forbidden(
            "A customer token may change only start_time, end_time and locale, "
            f"not {', '.join(extra)}."
        )


def moves(fields: set[str]) -> bool:
    """Whether a customer's change (of CUSTOMER_FIELDS) is a reschedule: anything but the
    language alone."""
    return not fields <= LANGUAGE_FIELDS


def check_new_time(
    *, old: tuple[datetime, datetime], new: tuple[datetime, datetime], now: datetime
) -> None:
    """A customer moves their booking to a start still ahead (as the public key books), and
    keeps its length: the length its page offered (a longer booking is a new one)."""
    check_start_for_key(key_kind="customer", start=new[0], now=now)
    if new[1] - new[0] != old[1] - old[0]:
        raise ValidationFailed.one(
            "end_time", "a customer may move the booking, not change its length"
        )


def _notice_ends(change: Change, *, start: datetime, notices: Notices) -> datetime:
    """When the page's notice closes `change` (that moment excluded)."""
    notice = notices.cancel if change == "cancel" else notices.reschedule
    return start - (notice or timedelta(0))


def deadline(change: Change, *, start: datetime, notices: Notices) -> datetime:
    """Until when the customer could make `change`, as the manage page says it: the start,
    minus the page's notice; for a seat's cancel, its class's window if that closes first."""
    last = _notice_ends(change, start=start, notices=notices)
    if change == "cancel" and notices.seat_cancel is not None:
        last = min(last, start - notices.seat_cancel)
    return last


def may_cancel(*, start: datetime, now: datetime, notices: Notices) -> bool:
    """Whether the customer's `cancel_by_customer` passes its time rules now: the page's notice
    (`check_notice`) and a seat's class window (rules.check_cancel_window), each as the action
    checks it. The one rule by which the answers (`available_actions`) and the manage page
    offer the cancel."""
    return now < _notice_ends("cancel", start=start, notices=notices) and cancel_window_open(
        start=start, now=now, min_cancel_time=notices.seat_cancel
    )


def check_notice(change: Change, *, start: datetime, now: datetime, notices: Notices) -> None:
    last = _notice_ends(change, start=start, notices=notices)
    if now >= last:
        what = "cancelled" if change == "cancel" else "rescheduled"
        raise NoticePassed(
            f"This booking can no longer be {what} by the customer: that was possible until "
            f"{last.isoformat()}.",
            deadline=last.isoformat(),
        )


def allowed_changes(
    *, graph: str, status: str, start: datetime, now: datetime, notices: Notices
) -> list[Change]:
    """What the customer may do now (the manage page offers these and nothing else)."""
    g = GRAPHS[graph]
    out: list[Change] = []
    if "cancel_by_customer" in g.manual_actions(status) and may_cancel(
        start=start, now=now, notices=notices
    ):
        out.append("cancel")
    if (
        g.occupies is Occupies.SLOT
        and not g.is_final(status)
        and not owner_agreed(graph, status)
        and now < deadline("reschedule", start=start, notices=notices)
    ):
        out.append("reschedule")
    return out


def remind_at(*, start: datetime, reminder: timedelta | None, now: datetime) -> datetime | None:
    """When to remind the customer of a booking starting at `start`; None: not at all (no
    reminder asked for, or its moment has passed already: the booking email said it all)."""
    if reminder is None:
        return None
    moment = start - reminder
    return moment if moment > now else None
