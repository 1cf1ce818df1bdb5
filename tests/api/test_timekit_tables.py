"""The Timekit adapter's translation tables, against expectations written out by hand.

Pure: no database, no HTTP. Each expectation is what Timekit's documentation says a field
means, stated in slotgraph's terms, not derived from the tables under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from slotgraph.api.timekit import booking_table, constraints, times
from slotgraph.errors import ValidationFailed

NOW = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def test_a_full_create_request_lands_on_these_fields() -> None:
    data = booking_table.booking_create(
        {
            "resource_id": "0192d3a4-0000-7000-8000-000000000001",
            "graph": "confirm_decline",
            "action": "create",
            "start": "1955-11-12T21:30:00-07:00",
            "end": "1955-11-12T22:15:00-07:00",
            "what": "Catch the lightning",
            "where": "Courthouse, Hill Valley",
            "description": "10:04 PM exactly",
            "customer": {
                "name": "Marty McFly",
                "email": "Marty@Example.com",
                "phone": "(916) 555-4385",
                "voip": "McFly",
                "timezone": "America/Los_Angeles",
            },
            "meta": {"ref": "A1"},
            "project_id": "0192d3a4-0000-7000-8000-0000000000aa",
        }
    )
    assert data.model_dump(exclude_defaults=True, mode="json") == {
        "graph": "confirm_decline",
        "resource_id": "0192d3a4-0000-7000-8000-000000000001",
        "start_time": "1955-11-13T04:30:00Z",
        "end_time": "1955-11-13T05:15:00Z",
        "details": "10:04 PM exactly",
        "customer": {
            "name": "Marty McFly",
            "email": "marty@example.com",
            "phone": "(916) 555-4385",
            "timezone": "America/Los_Angeles",
        },
        "meta": {
            "ref": "A1",
            "timekit": {
                "what": "Catch the lightning",
                "where": "Courthouse, Hill Valley",
                "project_id": "0192d3a4-0000-7000-8000-0000000000aa",
                "customer": {"voip": "McFly"},
            },
        },
    }


def test_a_seat_takes_its_class_and_drops_the_widgets_copy_of_it() -> None:
    data = booking_table.booking_create(
        {
            "graph": "group_customer",
            "resource_id": "0192d3a4-0000-7000-8000-000000000001",
            "start": "2024-05-06T10:00:00+02:00",
            "end": "2024-05-06T11:00:00+02:00",
            "related": {"owner_booking_id": "0192d3a4-0000-7000-8000-0000000000bb"},
            "customer": {"name": "Lorraine", "email": "l@example.com"},
            "settings": {"max_seats": 3},
        }
    )
    assert (data.resource_id, data.start_time, data.end_time) == (None, None, None)
    assert str(data.owner_booking_id) == "0192d3a4-0000-7000-8000-0000000000bb"
    assert data.max_seats == 3  # refused later by the group_customer shape, in Timekit's name


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"start": "2024-05-06T10:00:00", "end": "2024-05-06T11:00:00+00:00"}, "start"),
        ({"color": "red"}, "color"),
        ({"meta": {"timekit": {}}}, "meta.timekit"),
        ({"action": "explode"}, "action"),
    ],
)
def test_refusals_name_timekits_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        booking_table.booking_create(body)
    assert field in [f for f, _ in caught.value.errors]


def test_weekly_constraints_become_local_hours() -> None:
    found = constraints.translate(
        [
            {"allow_weekdays": {}},
            {"allow_day": {"day": "Saturday"}},
            {"allow_hours": {"start": 9, "end": 17}},
            {"block_hours": {"start": 12, "end": 13}},
            {"block_day_and_time": {"day": "Friday", "start": "15:30", "end": 24}},
        ],
        field="constraints",
        now=NOW,
    )
    morning, afternoon = (time(9), time(12)), (time(13), time(17))
    assert found.mask == {
        "mon": [morning, afternoon],
        "tue": [morning, afternoon],
        "wed": [morning, afternoon],
        "thu": [morning, afternoon],
        "fri": [morning, (time(13), time(15, 30))],
        "sat": [morning, afternoon],
        "sun": [],
    }
    assert constraints.weekly_hours(found.mask)["fri"] == [["09:00", "12:00"], ["13:00", "15:30"]]
    assert (found.allowed, found.blocked) == (None, [])


def test_periods_become_taken_time() -> None:
    found = constraints.translate(
        [
            {"allow_period": {"start": "2024-05-06T08:00:00Z", "end": "2024-05-06T10:00:00Z"}},
            {"block_period": {"start": "1 day", "end": "2 days"}},
        ],
        field="constraints",
        now=NOW,
    )
    assert found.mask is None
    assert found.blocked == [(NOW + timedelta(days=1), NOW + timedelta(days=2))]
    day = datetime(2024, 5, 6, tzinfo=UTC)
    assert found.allowed is not None
    assert constraints.outside(found.allowed, day, day + timedelta(days=1)) == [
        (day, day + timedelta(hours=8)),
        (day + timedelta(hours=10), day + timedelta(days=1)),
    ]


def test_relative_times_and_durations() -> None:
    assert times.duration("1 hour 30 minutes", "length") == timedelta(minutes=90)
    assert times.instant("3 days 2 weeks", "to", now=NOW) == NOW + timedelta(days=17)
    assert times.instant("now", "from", now=NOW) == NOW
    with pytest.raises(ValidationFailed):
        times.duration("2 months", "length")
    with pytest.raises(ValidationFailed):
        times.instant("2024-05-06T10:00:00", "from", now=NOW)


def test_a_services_422_speaks_timekits_names() -> None:
    with pytest.raises(ValidationFailed) as caught, booking_table.timekit_names():
        raise ValidationFailed([("start_time", "required"), ("max_seats", "only for group_owner")])
    assert caught.value.errors == [
        ("start", "required"),
        ("settings.max_seats", "only for group_owner"),
    ]
