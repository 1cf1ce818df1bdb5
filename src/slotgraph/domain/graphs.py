"""The booking graphs: each one a table of `(state, action) -> state`.

This table is the single source of truth. The services enforce it, `GET /v1/graphs` serves it,
and `docs/graphs.md` is generated from it, so the three cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any


class Occupies(StrEnum):
    """What a booking of a graph occupies while it holds (while its state is a holding state).

    The words, used the same way everywhere: a booking *holds* in its graph's `holding_states`;
    what it then occupies is a `slot` or a `seat`; the rows recording the time it occupies are
    its *holds* (`booking_holds`), which are `active` while it holds.
    """

    NOTHING = "nothing"
    SLOT = "slot"  # the resource's time: no other holding booking may overlap it
    SEAT = "seat"  # one seat of a group_owner class


@dataclass(frozen=True)
class Transition:
    action: str
    to: str
    automatic: bool = False  # applied by the system (worker or lazily), never through the API


@dataclass(frozen=True)
class Timer:
    """An action the system applies by itself when a moment comes.

    Due when the booking is in `state`, its field `at` (a moment) plus `after` has passed, and,
    with `unless_false`, that boolean field of the booking is true. domain/rules.py says so in
    Python (`timer_due`) and in SQL (`timer_due_sql`); the worker runs every timer of every graph,
    and a timer whose action is automatic is also applied by any request that meets it due.
    """

    state: str
    action: str
    at: str
    after: timedelta = timedelta(0)
    unless_false: str | None = None
    message: str | None = None  # written to the history row of the transition

    @property
    def when(self) -> str:
        """For people (docs, `GET /v1/graphs`): the moment, in terms of the booking's fields."""
        moment = f"{self.at} + {_iso_duration(self.after)}" if self.after else self.at
        return f"{moment}, unless {self.unless_false} is false" if self.unless_false else moment


def _iso_duration(d: timedelta) -> str:
    seconds = int(d.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n]
    return "PT" + "".join(parts)


AUTO_COMPLETE_AFTER = timedelta(hours=1)
_COMPLETED = "Completed automatically one hour after the end."
_COMPLETE_CONFIRMED = Timer(
    "confirmed", "complete", "end_time", AUTO_COMPLETE_AFTER, "auto_complete", _COMPLETED
)
_COMPLETE_PAID = Timer(
    "paid", "complete", "end_time", AUTO_COMPLETE_AFTER, "auto_complete", _COMPLETED
)
# An unpaid payment hold past its deadline holds nothing: it can only time out.
PAYMENT_TIMEOUT = Timer("tentative", "timeout", "payment_due_at")
# A confirm_decline request nobody answered before it started.
REQUEST_EXPIRY = Timer("tentative", "expire", "start_time")


@dataclass(frozen=True)
class Graph:
    name: str
    description: str
    initial: str
    occupies: Occupies  # what a booking of this graph occupies while it holds
    holding_states: frozenset[str]  # the states in which it holds
    table: Mapping[str, Mapping[str, Transition]]  # state -> action -> transition
    timers: tuple[Timer, ...] = ()
    states: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        seen: list[str] = [self.initial]
        for state, actions in self.table.items():
            for s in (state, *(t.to for t in actions.values())):
                if s not in seen:
                    seen.append(s)
        object.__setattr__(self, "states", tuple(seen))

    def holds_in(self, state: str) -> bool:
        return state in self.holding_states

    def is_final(self, state: str) -> bool:
        return not self.table.get(state)

    def transition(self, state: str, action: str) -> Transition | None:
        return self.table.get(state, {}).get(action)

    def is_automatic(self, state: str, action: str) -> bool:
        step = self.transition(state, action)
        return step is not None and step.automatic

    def manual_actions(self, state: str) -> list[str]:
        """Actions a client may apply now, in table order."""
        return [a for a, t in self.table.get(state, {}).items() if not t.automatic]

    def automatic_actions(self, state: str) -> list[str]:
        return [a for a, t in self.table.get(state, {}).items() if t.automatic]

    @property
    def final_states(self) -> tuple[str, ...]:
        return tuple(s for s in self.states if self.is_final(s))

    @property
    def actions(self) -> tuple[str, ...]:
        out: list[str] = []
        for actions in self.table.values():
            out.extend(a for a in actions if a not in out)
        return tuple(out)

    def describe(self) -> dict[str, Any]:
        """The JSON shape served by `GET /v1/graphs/{name}`."""
        return {
            "name": self.name,
            "description": self.description,
            "initial_state": self.initial,
            "holds": self.occupies.value,
            "states": [
                {
                    "name": s,
                    "holds": self.holds_in(s),
                    "final": self.is_final(s),
                }
                for s in self.states
            ],
            "actions": list(self.actions),
            "transitions": [
                {"from": s, "action": t.action, "to": t.to, "automatic": t.automatic}
                for s, actions in self.table.items()
                for t in actions.values()
            ],
            "timers": [{"state": t.state, "action": t.action, "at": t.when} for t in self.timers],
        }


def _t(*transitions: Transition) -> dict[str, Transition]:
    return {t.action: t for t in transitions}


_CONFIRMED = _t(
    Transition("cancel", "cancelled"),
    Transition("cancel_by_customer", "cancelled_by_customer"),
    Transition("cancel_by_owner", "cancelled_by_owner"),
    Transition("complete", "completed"),
)

INSTANT = Graph(
    name="instant",
    description="Booked at once: the slot is held from creation.",
    initial="confirmed",
    occupies=Occupies.SLOT,
    holding_states=frozenset({"confirmed"}),
    table={"confirmed": _CONFIRMED},
    timers=(_COMPLETE_CONFIRMED,),
)

CONFIRM_DECLINE = Graph(
    name="confirm_decline",
    description=(
        "A request the owner confirms or declines. A tentative request does not hold the slot, "
        "so several requests for the same time may wait; confirming one takes the slot."
    ),
    initial="tentative",
    occupies=Occupies.SLOT,
    holding_states=frozenset({"confirmed"}),
    table={
        "tentative": _t(
            Transition("confirm", "confirmed"),
            Transition("decline", "declined"),
            Transition("cancel", "cancelled"),
            Transition("expire", "expired", automatic=True),
        ),
        "confirmed": _CONFIRMED,
    },
    timers=(REQUEST_EXPIRY, _COMPLETE_CONFIRMED),
)

INSTANT_PAYMENT = Graph(
    name="instant_payment",
    description=(
        "Held until paid: the slot is held from creation until `payment_due_at`; "
        "unpaid by then, the booking times out and frees the slot."
    ),
    initial="tentative",
    occupies=Occupies.SLOT,
    holding_states=frozenset({"tentative", "paid"}),
    table={
        "tentative": _t(
            Transition("pay", "paid"),
            Transition("cancel", "cancelled"),
            Transition("timeout", "unpaid", automatic=True),
        ),
        "paid": _t(
            Transition("cancel", "cancelled"),
            Transition("cancel_by_customer", "cancelled_by_customer"),
            Transition("complete", "completed"),
        ),
    },
    timers=(PAYMENT_TIMEOUT, _COMPLETE_PAID),
)

GROUP_OWNER = Graph(
    name="group_owner",
    description=(
        "A class with seats: holds the resource's time; customers take seats with "
        "group_customer or group_customer_payment bookings."
    ),
    initial="confirmed",
    occupies=Occupies.SLOT,
    holding_states=frozenset({"confirmed"}),
    table={
        "confirmed": _t(
            Transition("cancel", "cancelled"),
            Transition("complete", "completed"),
        ),
    },
    timers=(_COMPLETE_CONFIRMED,),
)

GROUP_CUSTOMER = Graph(
    name="group_customer",
    description="One seat in a group_owner class.",
    initial="confirmed",
    occupies=Occupies.SEAT,
    holding_states=frozenset({"confirmed"}),
    table={
        "confirmed": _t(
            Transition("cancel_by_customer", "cancelled_by_customer"),
            Transition("cancel_by_owner", "cancelled_by_owner"),
            Transition("cancel", "cancelled"),
            Transition("complete", "completed"),
        ),
    },
    timers=(_COMPLETE_CONFIRMED,),
)

GROUP_CUSTOMER_PAYMENT = Graph(
    name="group_customer_payment",
    description="One seat in a group_owner class, held until paid.",
    initial="tentative",
    occupies=Occupies.SEAT,
    holding_states=frozenset({"tentative", "paid"}),
    table={
        "tentative": _t(
            Transition("pay", "paid"),
            Transition("timeout", "unpaid", automatic=True),
            Transition("cancel_by_customer", "cancelled_by_customer"),
            Transition("cancel_by_owner", "cancelled_by_owner"),
            Transition("cancel", "cancelled"),
        ),
        "paid": _t(
            Transition("complete", "completed"),
            Transition("cancel_by_customer", "cancelled_by_customer"),
            Transition("cancel_by_owner", "cancelled_by_owner"),
        ),
    },
    timers=(PAYMENT_TIMEOUT, _COMPLETE_PAID),
)

GRAPHS: Mapping[str, Graph] = {
    g.name: g
    for g in (
        INSTANT,
        CONFIRM_DECLINE,
        INSTANT_PAYMENT,
        GROUP_OWNER,
        GROUP_CUSTOMER,
        GROUP_CUSTOMER_PAYMENT,
    )
}

DEFAULT_GRAPH = INSTANT.name
SEAT_GRAPHS = frozenset(g.name for g in GRAPHS.values() if g.occupies is Occupies.SEAT)
PAYMENT_GRAPHS = frozenset({INSTANT_PAYMENT.name, GROUP_CUSTOMER_PAYMENT.name})
ALL_ACTIONS: frozenset[str] = frozenset(a for g in GRAPHS.values() for a in g.actions)
