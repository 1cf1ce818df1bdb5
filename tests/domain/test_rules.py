"""Booking and cancellation windows, payment deadlines, creation shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slotgraph.domain.rules import check_booking_window, check_cancel_window, payment_overdue
from slotgraph.domain.shape import booking_shape_errors
from slotgraph.errors import BookingWindowClosed, CancelWindowClosed

START = datetime(2026, 3, 29, 10, 0, tzinfo=UTC)
minutes = st.integers(min_value=0, max_value=60 * 24 * 30)


@given(now_offset=st.integers(-60 * 24 * 40, 60 * 24 * 5), lo=minutes, extra=minutes)
def test_booking_window_matches_its_definition(now_offset: int, lo: int, extra: int) -> None:
    now = START + timedelta(minutes=now_offset)
    min_b, max_b = timedelta(minutes=lo), timedelta(minutes=lo + extra)
    inside = START - max_b <= now <= START - min_b
    try:
        check_booking_window(start=START, now=now, min_booking_time=min_b, max_booking_time=max_b)
    except BookingWindowClosed:
        assert not inside
    else:
        assert inside


def test_booking_window_defaults_open_until_start() -> None:
    check_booking_window(start=START, now=START, min_booking_time=None, max_booking_time=None)
    with pytest.raises(BookingWindowClosed):
        check_booking_window(
            start=START,
            now=START + timedelta(microseconds=1),
            min_booking_time=None,
            max_booking_time=None,
        )


@given(now_offset=st.integers(-60 * 24 * 5, 60 * 24 * 5), lead=minutes)
def test_cancel_window(now_offset: int, lead: int) -> None:
    now = START + timedelta(minutes=now_offset)
    allowed = now <= START - timedelta(minutes=lead)
    try:
        check_cancel_window(start=START, now=now, min_cancel_time=timedelta(minutes=lead))
    except CancelWindowClosed:
        assert not allowed
    else:
        assert allowed


def test_payment_overdue() -> None:
    due = START
    assert payment_overdue(status="tentative", payment_due_at=due, now=due)
    assert not payment_overdue(status="tentative", payment_due_at=due, now=due - timedelta(1))
    assert not payment_overdue(status="paid", payment_due_at=due, now=due + timedelta(1))
    assert not payment_overdue(status="tentative", payment_due_at=None, now=due)


def test_shapes() -> None:
    full = {"resource_id": 1, "start_time": 2, "end_time": 3, "client_id": 4}
    assert booking_shape_errors("instant", full) == []
    assert [f for f, _ in booking_shape_errors("instant", {})] == [
        "resource_id",
        "start_time",
        "end_time",
        "client_id",
    ]
    assert booking_shape_errors("group_owner", {**full, "client_id": None, "max_seats": 3}) == []
    seat = {"owner_booking_id": 1, "client_id": 2}
    assert booking_shape_errors("group_customer", seat) == []
    assert [f for f, _ in booking_shape_errors("group_customer", {**seat, "end_time": 1})] == [
        "end_time"
    ]
    assert [f for f, _ in booking_shape_errors("instant", {**full, "payment_timeout": 1})] == [
        "payment_timeout"
    ]
