"""Random operation sequences through HTTP, checked against a simple in-memory oracle.

The oracle knows only the rules (half-open intervals, holding states, payment deadlines). After each
step the API must agree with it, and at the end no two holding bookings of a resource overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import T0, Api, Clock, make_api
from tests.conftest import clean

pytestmark = pytest.mark.slow  # a property test through the API

BASE = T0 + timedelta(days=1)
SLOT = timedelta(minutes=30)


@dataclass
class Model:
    resource: int
    start: datetime
    end: datetime
    graph: str
    status: str
    due: datetime | None

    def overdue(self, now: datetime) -> bool:
        return self.status == "tentative" and self.due is not None and self.due <= now

    def holds(self, now: datetime) -> bool:
        return self.status in ("confirmed", "paid") or (
            self.status == "tentative" and not self.overdue(now)
        )


ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("book"),
            st.integers(0, 1),
            st.integers(0, 11),
            st.integers(1, 4),
            st.sampled_from(["instant", "instant_payment"]),
        ),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
        st.tuples(st.just("pay"), st.integers(0, 30)),
        st.tuples(st.just("move"), st.integers(0, 30), st.integers(0, 11), st.integers(1, 4)),
        st.tuples(st.just("wait"), st.integers(1, 4)),
    ),
    min_size=1,
    max_size=18,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=ops)
async def test_api_agrees_with_the_oracle(
    engine: AsyncEngine, steps: list[tuple[Any, ...]]
) -> None:
    await clean(engine)
    clock = Clock()
    http, created = await make_api(engine, clock)
    async with http:
        api = Api(http, created.secret_key, created.public_key, clock, engine.dialect.name)
        resources = [(await api.resource(name=f"R{i}"))["resource_id"] for i in range(2)]
        client = (await api.client())["client_id"]
        ids: list[str] = []
        model: dict[str, Model] = {}

        def free(resource: int, start: datetime, end: datetime, skip: str | None) -> bool:
            return not any(
                m.resource == resource and m.holds(clock.now) and m.start < end and start < m.end
                for bid, m in model.items()
                if bid != skip
            )

        def settle(bid: str) -> bool:
            m = model[bid]
            if m.overdue(clock.now):
                m.status = "unpaid"
                return True
            return False

        def settle_in_the_way(resource: int, start: datetime, end: datetime) -> None:
            """A create or a move times out every overdue payment hold in its way."""
            for bid, m in model.items():
                if m.resource == resource and m.start < end and start < m.end:
                    settle(bid)

        for step in steps:
            kind = step[0]
            if kind == "book":
                _, res, slot, length, graph = step
                start = BASE + slot * SLOT
                end = start + length * SLOT
                r = await api.post(
                    "/v1/bookings",
                    {
                        "graph": graph,
                        "resource_id": resources[res],
                        "client_id": client,
                        "start_time": start.isoformat(),
                        "end_time": end.isoformat(),
                    },
                )
                if free(res, start, end, None):
                    assert r.status_code == 201, r.text
                    b = r.json()
                    ids.append(b["booking_id"])
                    due = clock.now + timedelta(minutes=5) if graph == "instant_payment" else None
                    model[b["booking_id"]] = Model(res, start, end, graph, b["status"], due)
                    settle_in_the_way(res, start, end)
                else:
                    assert r.status_code == 409, r.text
                    assert r.json()["code"] == "slot_unavailable"
            elif kind == "wait":
                clock.advance(timedelta(minutes=2 * step[1]))
            elif not ids:
                continue
            else:
                bid = ids[step[1] % len(ids)]
                m = model[bid]
                action = {"cancel": "cancel", "pay": "pay"}.get(kind)
                if kind == "move":
                    start = BASE + step[2] * SLOT
                    end = start + step[3] * SLOT
                    r = await api.put(
                        f"/v1/bookings/{bid}",
                        {"start_time": start.isoformat(), "end_time": end.isoformat()},
                    )
                else:
                    r = await api.put(f"/v1/bookings/{bid}/{action}")
                if settle(bid):
                    assert r.status_code == 409, r.text
                    assert r.json()["code"] == "payment_expired"
                elif m.status in ("cancelled", "unpaid"):
                    assert r.status_code == 409, r.text
                    assert r.json()["code"] in ("invalid_action", "not_modifiable")
                elif kind == "move":
                    if free(m.resource, start, end, bid):
                        assert r.status_code == 200, r.text
                        m.start, m.end = start, end
                        settle_in_the_way(m.resource, start, end)
                    else:
                        assert r.status_code == 409, r.text
                        assert r.json()["code"] == "slot_unavailable"
                elif kind == "pay" and m.status != "tentative":
                    assert r.status_code == 409, r.text
                    assert r.json()["code"] == "invalid_action"
                else:
                    assert r.status_code == 200, r.text
                    m.status = "paid" if kind == "pay" else "cancelled"
                assert (await api.get(f"/v1/bookings/{bid}")).json()["status"] == m.status

        listed = (await api.get("/v1/bookings", limit=200)).json()["data"]
        for bid in model:
            settle(bid)
        assert {b["booking_id"]: b["status"] for b in listed} == {
            bid: m.status for bid, m in model.items()
        }
        holding = [b for b in listed if b["holds"]]
        for a in holding:
            for b in holding:
                if a["booking_id"] < b["booking_id"] and a["resource_id"] == b["resource_id"]:
                    assert a["end_time"] <= b["start_time"] or b["end_time"] <= a["start_time"]
