"""A read does not wait for another transaction's lock to apply a due timer.

GET /v1/bookings (and one booking's GET, /v2's search) first applies the automatic actions
that are due (a payment hold past its deadline becomes unpaid). It locked the due bookings to
do so, and waited for any another transaction held (a request paying it, a psql session):
the read answered only when the lock was let go, or 503 `database_busy` after the lock timeout
(10 s). Now it leaves such a booking as it stands (what the holder commits decides; the next
read or the worker's timers apply the timer), and answers at once.

PostgreSQL only: SQLite has no row locks; a writer there holds the whole file, and every write
(a read applying a timer too) waits for it (tests/api/test_database_refuses_work.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import Api


async def test_a_read_shows_a_due_booking_another_transaction_holds_as_it_stands(
    api: Api, engine: AsyncEngine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL only (see the module's docstring)")
    resource, client = await api.resource(), await api.client()
    slot: dict[str, Any] = {
        "resource_id": resource["resource_id"],
        "client_id": client["client_id"],
        "start_time": "2024-05-18T10:00:00Z",
        "end_time": "2024-05-18T11:00:00Z",
    }
    held = await api.book(graph="instant_payment", payment_timeout="PT5M", **slot)
    other = await api.book(
        **{**slot, "start_time": "2024-05-19T10:00:00Z", "end_time": "2024-05-19T11:00:00Z"}
    )
    api.clock.advance(timedelta(minutes=5))  # the hold's payment is due now
    path = f"/v1/bookings/{held['booking_id']}"
    async with engine.connect() as holder:  # another client holds the booking's row
        await holder.execute(
            text("SELECT id FROM bookings WHERE id = :id FOR UPDATE"),
            {"id": held["booking_id"]},
        )
        # 200s, not 503 database_busy: a read that waited for the lock was refused after the
        # lock timeout (no wall-clock bound here: a loaded CI machine is slow, never 503).
        listed = await api.get("/v1/bookings")
        one = await api.get(path)
        searched = await api.get("/v2/bookings")
        await holder.rollback()
    assert (listed.status_code, one.status_code, searched.status_code) == (200, 200, 200), (
        listed.text
    )
    statuses = {b["booking_id"]: b["status"] for b in listed.json()["data"]}
    assert statuses == {held["booking_id"]: "tentative", other["booking_id"]: "confirmed"}
    assert one.json()["status"] == "tentative"
    # It offers no action: each would apply the timer first and be refused (`pay` is
    # `payment_expired`). Before, `pay` and `cancel` were offered as if it were not due.
    listed_actions = {b["booking_id"]: b["available_actions"] for b in listed.json()["data"]}
    assert listed_actions[held["booking_id"]] == []
    assert listed_actions[other["booking_id"]] == other["available_actions"] != []
    assert one.json()["available_actions"] == []
    (shown,) = [b for b in searched.json()["data"] if b["id"] == held["booking_id"]]
    assert shown["available_actions"] == shown["possible_actions"] == []
    # Let go, `pay` is refused, as the empty list said (the timer applied first).
    paid = await api.put(f"{path}/pay", {})
    assert (paid.status_code, paid.json()["code"]) == (409, "payment_expired"), paid.text
    assert (await api.get(path)).json()["status"] == "unpaid"
