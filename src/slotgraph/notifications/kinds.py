"""Which booking event sends which email, to whom. Pure: a table, like the graphs.

The customer hears of every change of their booking; the resource's owner hears of every new
booking or request (a request's email carries confirm and decline links).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from slotgraph.i18n import N_

Audience = Literal["customer", "owner"]
Method = Literal["REQUEST", "CANCEL"]
AUDIENCES: tuple[Audience, ...] = ("customer", "owner")
# The `format` of each app's email targets in webhook_endpoints (one per audience).
FORMAT: dict[Audience, str] = {"customer": "email:customer", "owner": "email:owner"}
FORMATS = tuple(FORMAT.values())
AUDIENCE_OF: dict[str, Audience] = {f: a for a, f in FORMAT.items()}
REMINDER_EVENT = "booking.reminder"


@dataclass(frozen=True)
class Kind:
    name: str
    # In English; a customer's are translated when the email is composed (web/locales/*.po).
    subject: str  # a Jinja2 expression-free line; {resource} and {when} are filled in
    headline: str
    method: Method | None = None  # the .ics attachment's METHOD (customer emails only)
    decides: bool = False  # carries the owner's confirm/decline link
    moved: bool = False  # says the booking's previous time too


CUSTOMER_KINDS = {
    k.name: k
    for k in (
        Kind(
            "booked", N_("Booked: {resource}, {when}"), N_("Your booking is confirmed."), "REQUEST"
        ),
        Kind(
            "requested",
            N_("Requested: {resource}, {when}"),
            N_("We have your request; you will hear once it is confirmed or declined."),
            "REQUEST",
        ),
        Kind(
            "confirmed",
            N_("Confirmed: {resource}, {when}"),
            N_("Your booking is confirmed."),
            "REQUEST",
        ),
        Kind(
            "declined",
            N_("Declined: {resource}, {when}"),
            N_("Your request was declined."),
            "CANCEL",
        ),
        Kind(
            "rescheduled",
            N_("New time: {resource}, {when}"),
            N_("Your booking has a new time."),
            "REQUEST",
            moved=True,
        ),
        Kind(
            "cancelled",
            N_("Cancelled: {resource}, {when}"),
            N_("Your booking is cancelled."),
            "CANCEL",
        ),
        Kind(
            "reminder",
            N_("Reminder: {resource}, {when}"),
            N_("A reminder of your booking."),
            "REQUEST",
        ),
    )
}
# The owner's emails are in English (the owner's language is not known).
OWNER_KINDS = {
    k.name: k
    for k in (
        Kind("new_booking", "New booking: {customer}, {when}", "A new booking."),
        Kind(
            "new_request",
            "Please confirm: {customer}, {when}",
            "A new request: confirm or decline it.",
            decides=True,
        ),
    )
}

# event type -> the customer's email (the create event is decided by `customer_kind`)
_CUSTOMER_BY_EVENT = {
    "booking.confirmed": "confirmed",
    "booking.paid": "confirmed",
    "booking.declined": "declined",
    "booking.expired": "declined",
    "booking.cancelled": "cancelled",
    "booking.cancelled_by_customer": "cancelled",
    "booking.cancelled_by_owner": "cancelled",
    "booking.unpaid": "cancelled",
    "booking.updated": "rescheduled",  # only when its time or resource moved
    REMINDER_EVENT: "reminder",
}
# Graphs whose bookings have no customer of their own (a class).
NO_CUSTOMER_GRAPHS = frozenset({"group_owner"})


def customer_kind(
    *, event_type: str, action: str | None, status: str, graph: str, moved: bool
) -> Kind | None:
    """The email the customer gets for this event, if any."""
    if graph in NO_CUSTOMER_GRAPHS:
        return None
    if action == "create":
        name = "requested" if graph == "confirm_decline" and status == "tentative" else "booked"
        return CUSTOMER_KINDS[name]
    name_ = _CUSTOMER_BY_EVENT.get(event_type)
    if name_ is None or (name_ == "rescheduled" and not moved):
        return None
    return CUSTOMER_KINDS[name_]


def owner_kind(*, action: str | None, status: str, graph: str) -> Kind | None:
    """The email the resource's owner gets for this event: new bookings and requests only."""
    if action != "create" or graph in NO_CUSTOMER_GRAPHS:
        return None
    if graph == "confirm_decline" and status == "tentative":
        return OWNER_KINDS["new_request"]
    return OWNER_KINDS["new_booking"]


def kind_of(
    audience: Audience,
    event_type: str,
    action: str | None,
    booking: dict[str, Any],
    *,
    moved: bool,
) -> Kind | None:
    status, graph = booking["status"], booking["graph"]
    if audience == "customer":
        return customer_kind(
            event_type=event_type, action=action, status=status, graph=graph, moved=moved
        )
    return owner_kind(action=action, status=status, graph=graph)
