"""`/v2` durations in Timekit's shapes at the edges of what JSON holds: a 422 naming the field,
never a 500. Both backends."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.api.test_timekit import resource, v2

LARGEST = 2**63 - 1  # the guard lets 64-bit integers in


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("length", LARGEST),
        ("buffer", LARGEST),
        ("timeslot_increments", LARGEST),
        ("length", 10**7),
        ("length", "999999 weeks " * 150),
    ],
)
async def test_durations_past_what_a_timedelta_holds_are_422(
    api: Api, field: str, value: object
) -> None:
    # Before: OverflowError in timedelta, 500 internal_error, on PostgreSQL and SQLite alike.
    a = await resource(api, name="A")
    body = {
        "resources": [a["id"]],
        "from": "2024-05-06T08:00:00Z",
        "to": "2024-05-07T08:00:00Z",
        "length": "1 hour",
        field: value,
    }
    r = await v2(api, "POST", "/availability", body)
    assert (r.status_code, r.json()["code"]) == (422, "validation_error"), r.text
    assert list(r.json()["errors"]) == [field]
