"""The timers of the graph table: which graph declares which, and when each is due.

Expectations are written out here, not derived from the table. `timer_due` (Python) and
`timer_due_sql` (the WHERE clause the worker and the availability queries use) must both
give them; the SQL is run for real on an in-memory SQLite table.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, create_engine, select

from slotgraph.db.models import Booking
from slotgraph.db.types import UTCDateTime
from slotgraph.domain.graphs import GRAPHS, PAYMENT_TIMEOUT, REQUEST_EXPIRY, Timer
from slotgraph.domain.rules import due_timer, timer_due, timer_due_sql

COMPLETE = "end_time + PT1H, unless auto_complete is false"
DECLARED = {
    "instant": {("confirmed", "complete", COMPLETE)},
    "confirm_decline": {("tentative", "expire", "start_time"), ("confirmed", "complete", COMPLETE)},
    "instant_payment": {("tentative", "timeout", "payment_due_at"), ("paid", "complete", COMPLETE)},
    "group_owner": {("confirmed", "complete", COMPLETE)},
    "group_customer": {("confirmed", "complete", COMPLETE)},
    "group_customer_payment": {
        ("tentative", "timeout", "payment_due_at"),
        ("paid", "complete", COMPLETE),
    },
}


def test_each_graph_declares_its_timers() -> None:
    assert {
        name: {(t.state, t.action, t.when) for t in g.timers} for name, g in GRAPHS.items()
    } == DECLARED


def test_timers_name_real_fields_and_actions() -> None:
    columns = set(Booking.__table__.c.keys())
    for graph in GRAPHS.values():
        for timer in graph.timers:
            assert graph.transition(timer.state, timer.action) is not None
            assert timer.at in columns
            assert timer.unless_false is None or timer.unless_false in columns


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
COMPLETE_CONFIRMED = GRAPHS["instant"].timers[0]

# (timer, status, moment, auto_complete, now, due)
CASES: list[tuple[Timer, str, datetime | None, bool, datetime, bool]] = [
    (PAYMENT_TIMEOUT, "tentative", T0, True, T0, True),  # the deadline itself is past it
    (PAYMENT_TIMEOUT, "tentative", T0, True, T0 - timedelta(seconds=1), False),
    (PAYMENT_TIMEOUT, "tentative", T0, False, T0 + timedelta(days=1), True),
    (PAYMENT_TIMEOUT, "paid", T0, True, T0 + timedelta(hours=1), False),
    (PAYMENT_TIMEOUT, "tentative", None, True, T0, False),
    (REQUEST_EXPIRY, "tentative", T0, True, T0, True),
    (REQUEST_EXPIRY, "tentative", T0, True, T0 - timedelta(minutes=1), False),
    (REQUEST_EXPIRY, "confirmed", T0, True, T0 + timedelta(days=1), False),
    (COMPLETE_CONFIRMED, "confirmed", T0, True, T0 + timedelta(hours=1), True),
    (COMPLETE_CONFIRMED, "confirmed", T0, True, T0 + timedelta(minutes=59), False),
    (COMPLETE_CONFIRMED, "confirmed", T0, False, T0 + timedelta(days=2), False),
    (COMPLETE_CONFIRMED, "cancelled", T0, True, T0 + timedelta(days=2), False),
]


class Row:
    def __init__(self, status: str, moment: datetime | None, auto_complete: bool) -> None:
        self.status, self.auto_complete = status, auto_complete
        self.payment_due_at = self.start_time = self.end_time = moment


@pytest.mark.parametrize(("timer", "status", "moment", "auto", "now", "due"), CASES)
def test_timer_due_in_python_and_in_sql(
    timer: Timer, status: str, moment: datetime | None, auto: bool, now: datetime, due: bool
) -> None:
    assert timer_due(timer, Row(status, moment, auto), now) is due
    table = Table(
        "bookings",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("status", String),
        Column("payment_due_at", UTCDateTime),
        Column("start_time", UTCDateTime),
        Column("end_time", UTCDateTime),
        Column("auto_complete", Boolean),
    )
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            {
                "id": 1,
                "status": status,
                "payment_due_at": moment,
                "start_time": moment,
                "end_time": moment,
                "auto_complete": auto,
            },
        )
        found = conn.execute(select(table.c.id).where(timer_due_sql(timer, table.c, now))).all()
    assert bool(found) is due


def test_only_automatic_timers_are_applied_on_access() -> None:
    paid_long_ago = Row("paid", T0, True)
    graph = GRAPHS["instant_payment"]
    assert due_timer(graph, paid_long_ago, T0 + timedelta(days=1)) is graph.timers[1]
    assert due_timer(graph, paid_long_ago, T0 + timedelta(days=1), automatic=True) is None
    unpaid = Row("tentative", T0, True)
    assert due_timer(graph, unpaid, T0, automatic=True) is PAYMENT_TIMEOUT
