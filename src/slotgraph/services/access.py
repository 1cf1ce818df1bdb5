"""What the public (browser) key may do and see, in one place (docs/security.md).

The routes it may call at all are decided by the guard (api/guard.py, from each route's key);
this module holds the rules inside those routes, which every way in (/v1 and /v2) shares:

- it books only with an inline `customer {name, email, ...}`, never by `client_id`; only in the
  app's `public_graphs`; never with `override_rules`; with `payment_timeout` at most P1D;
  never with `notify: false` (a customer would silence the business owner's emails too);
- the answer to its booking never carries the client's id (an email that matches a client links
  the booking to that client, and says nothing about it);
- it reads a resource's public fields only: no `email` (not in a free/busy calendar either),
  and `meta` only when `meta.public` is `true`;
- it never sees an archived resource: archived means withdrawn (`include_archived=true` is 403,
  an archived resource's id is 404, as if it had never been).
"""

from __future__ import annotations

from typing import TypeVar

from slotgraph.bounds import MAX_PUBLIC_PAYMENT_TIMEOUT
from slotgraph.domain.availability import iso
from slotgraph.errors import Forbidden, ValidationFailed
from slotgraph.schemas import BookingCreate, BookingOut, ResourceOut
from slotgraph.services.common import Principal

AnyBooking = TypeVar("AnyBooking", bound=BookingOut)


def check_booking(principal: Principal, data: BookingCreate) -> None:
    """Refuse what the public key may not ask for in a new booking (403, or 422 for a bound)."""
    if principal.kind == "secret":
        return
    if data.client_id is not None:
        raise Forbidden(
            "The public key books with an inline `customer {name, email}`; `client_id` needs "
            "the secret key."
        )
    allowed = principal.settings.public_graphs
    if data.graph not in allowed:
        raise Forbidden(
            f"The public key may not create {data.graph} bookings; this app allows "
            f"{', '.join(allowed) or 'none'} (the app setting public_graphs).",
            public_graphs=list(allowed),
        )
    if data.override_rules:
        raise Forbidden("override_rules needs the secret key.")
    if not data.notify:
        raise Forbidden(
            "notify: false needs the secret key: a booking made with the public key sends its "
            "emails (the app settings `notifications` turn an audience off for every booking)."
        )
    if data.payment_timeout is not None and data.payment_timeout > MAX_PUBLIC_PAYMENT_TIMEOUT:
        raise ValidationFailed.one(
            "payment_timeout",
            f"must be at most {iso(MAX_PUBLIC_PAYMENT_TIMEOUT)} with the public key",
        )


def booking_answer(principal: Principal, out: AnyBooking) -> AnyBooking:
    """The booking as its creator may see it: the public key never learns a client's id."""
    if principal.kind == "secret":
        return out
    return out.model_copy(update={"client_id": None})


def resource_answer(principal: Principal, out: ResourceOut) -> ResourceOut:
    """A resource as the caller may see it: the public key gets its public fields only."""
    if principal.kind == "secret":
        return out
    shown = out.meta if out.meta.get("public") is True else {}
    return out.model_copy(update={"email": None, "meta": shown, "feed_url": None})


def check_include_archived(principal: Principal, include_archived: bool) -> None:
    """Archived resources are listed to the secret key only (403 for the public key: asked for,
    refused plainly rather than left out without a word)."""
    if include_archived and principal.kind != "secret":
        raise Forbidden(
            "include_archived needs the secret key: an archived resource is withdrawn, and the "
            "public key sees live resources only."
        )


def sees_resource(principal: Principal, *, archived: bool) -> bool:
    """Whether the caller may see a resource at all: the public key never sees an archived one
    (its id answers 404, as an unknown one does)."""
    return principal.kind == "secret" or not archived


def resource_email(principal: Principal, email: str | None) -> str | None:
    """A resource's email where an answer names it otherwise (the iCalendar free/busy's
    ATTENDEE): the secret key's only, as in resource_answer."""
    return email if principal.kind == "secret" else None
