"""The real `timekit-sdk` 1.19.8, unmodified, against a live slotgraph: one Node script per
scenario asserts what the SDK sees; these tests then ask the database what it holds."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from slotgraph.db.engine import create_engine
from tests.compat.conftest import Live, run_node

pytestmark = [pytest.mark.npm, pytest.mark.system]


async def rows(live: Live, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(live.server.database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


def ids(values: list[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


async def test_resources(live: Live) -> None:
    out = run_node(live, "resources.js")
    found = await rows(live, "SELECT name, archived_at IS NOT NULL, weekly_hours FROM resources")
    assert sorted((n, a) for n, a, _ in found) == [
        ("Biff Tannen", True),
        ("Doc Brown", False),
        ("Marty", False),
    ]
    weekly = found[0][2]
    assert (weekly if isinstance(weekly, dict) else __import__("json").loads(weekly)) == {
        day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")
    }
    assert len(out["resources"]) == 3


async def test_availability_in_three_modes(live: Live) -> None:
    run_node(live, "availability.js")
    held = await rows(live, "SELECT COUNT(*) FROM booking_holds WHERE active")
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
        await rows(live, f"SELECT id, status FROM bookings WHERE id IN ({_in(live, made)})")
    )
    assert {str(k).replace("-", ""): v for k, v in found.items()} == {
        b["id"].replace("-", ""): b["state"] for b in made
    }
    # every action is history: one row for the creation, one per action, in the database
    history = await rows(
        live,
        f"SELECT COUNT(*) FROM booking_transitions WHERE booking_id IN ({_in(live, made)})",
    )
    assert history == [(sum(1 + len(b["actions"]) for b in made),)]
    # seats left in the class: taken ones only (paid or confirmed ones completed free nothing)
    seats = await rows(
        live, f"SELECT seats_taken FROM bookings WHERE id IN ({_in(live, [{'id': out['class']}])})"
    )
    still = [b for b in made if b["graph"].startswith("group_customer") and b["state"] == "paid"]
    assert seats == [(len(still),)]


def _in(live: Live, made: list[dict[str, Any]]) -> str:
    if live.server.backend == "sqlite":
        return ids([b["id"].replace("-", "") for b in made])
    return ids([b["id"] for b in made])


async def test_list_search_and_include(live: Live) -> None:
    out = run_node(live, "list_search.js")
    found = await rows(live, "SELECT COUNT(*) FROM bookings")
    assert found == [(len(out["bookings"]),)]


async def test_reschedule(live: Live) -> None:
    out = run_node(live, "reschedule.js")
    found = await rows(
        live,
        "SELECT b.status, h.resource_id, h.active FROM bookings b "
        f"JOIN booking_holds h ON h.booking_id = b.id WHERE b.id IN "
        f"({_in(live, [{'id': out['booking']}])})",
    )
    assert len(found) == 1
    status, resource_id, active = found[0]
    assert status == "confirmed"
    assert str(resource_id).replace("-", "") == out["moved_to"].replace("-", "")
    assert active
