"""The real `timekit-sdk` 1.19.8, unmodified, against a live slotgraph: one Node script per
scenario asserts what the SDK sees; these tests then ask the database what it holds."""

from __future__ import annotations

import json

import pytest

from tests.compat.conftest import Live, id_list, rows, run_node

pytestmark = [pytest.mark.npm, pytest.mark.system]


async def test_resources(live: Live) -> None:
    out = run_node(live, "resources.js")
    found = await rows(
        live,
        "SELECT name, archived_at IS NOT NULL, weekly_hours FROM resources "
        f"WHERE id IN ({id_list(live, out['resources'])})",
    )
    assert sorted((n, a) for n, a, _ in found) == [
        ("Biff Tannen", True),
        ("Doc Brown", False),
        ("Marty", False),
    ]
    weekly = found[0][2]
    assert (weekly if isinstance(weekly, dict) else json.loads(weekly)) == {
        day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")
    }
    assert len(out["resources"]) == 3


async def test_availability_in_three_modes(live: Live) -> None:
    out = run_node(live, "availability.js")
    held = await rows(
        live,
        "SELECT COUNT(*) FROM booking_holds WHERE active AND resource_id IN "
        f"({id_list(live, out['resources'])})",
    )
    assert held == [(1,)]


async def test_every_graph_and_every_action(live: Live) -> None:
    out = run_node(live, "graphs.js")
    made = out["bookings"]
    assert {b["graph"] for b in made} == {
        "instant",
        "confirm_decline",
        "instant_payment",
        "group_owner",
        "group_customer",
        "group_customer_payment",
    }
    found = dict(
        await rows(live, f"SELECT id, status FROM bookings WHERE id IN ({id_list(live, made)})")
    )
    assert {str(k).replace("-", ""): v for k, v in found.items()} == {
        b["id"].replace("-", ""): b["state"] for b in made
    }
    # every action is history: one row for the creation, one per action, in the database
    history = await rows(
        live,
        f"SELECT COUNT(*) FROM booking_transitions WHERE booking_id IN ({id_list(live, made)})",
    )
    assert history == [(sum(1 + len(b["actions"]) for b in made),)]
    # seats left in the class: taken ones only (paid or confirmed ones completed free nothing)
    seats = await rows(
        live,
        f"SELECT seats_taken FROM bookings WHERE id IN ({id_list(live, [{'id': out['class']}])})",
    )
    still = [b for b in made if b["graph"].startswith("group_customer") and b["state"] == "paid"]
    assert seats == [(len(still),)]


async def test_list_search_and_include(live: Live) -> None:
    out = run_node(live, "list_search.js")
    found = await rows(
        live,
        "SELECT COUNT(*) FROM bookings b JOIN clients c ON c.id = b.client_id "
        f"WHERE b.id IN ({id_list(live, out['bookings'])}) AND c.email LIKE 'guest%@example.com'",
    )
    assert found == [(5,)]


async def test_reschedule(live: Live) -> None:
    out = run_node(live, "reschedule.js")
    found = await rows(
        live,
        "SELECT b.status, h.resource_id, h.active FROM bookings b "
        f"JOIN booking_holds h ON h.booking_id = b.id WHERE b.id IN "
        f"({id_list(live, [out['booking']])})",
    )
    assert len(found) == 1
    status, resource_id, active = found[0]
    assert status == "confirmed"
    assert str(resource_id).replace("-", "") == out["moved_to"].replace("-", "")
    assert active
