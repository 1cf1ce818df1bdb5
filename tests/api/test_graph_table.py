"""Every graph x every state x every action, through HTTP.

An allowed action moves the booking exactly as the table says and writes one history row; any other
action is 409 invalid_action, lists the allowed actions, and changes nothing.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from typing import Any

import pytest

from slotgraph.domain.graphs import ALL_ACTIONS, GRAPHS, SEAT_GRAPHS, Graph
from tests.api.conftest import Api

CASES = [(g.name, s) for g in GRAPHS.values() for s in g.states]


def path_to(graph: Graph, target: str) -> list[str]:
    """The shortest list of actions from the initial state to `target` (automatic ones included)."""
    queue: deque[tuple[str, list[str]]] = deque([(graph.initial, [])])
    seen = {graph.initial}
    while queue:
        state, path = queue.popleft()
        if state == target:
            return path
        for action, t in graph.table.get(state, {}).items():
            if t.to not in seen:
                seen.add(t.to)
                queue.append((t.to, [*path, action]))
    raise AssertionError(f"{target} unreachable in {graph.name}")


class Driver:
    def __init__(self, api: Api, graph: Graph) -> None:
        self.api, self.graph, self.n = api, graph, 0

    async def setup(self) -> None:
        self.resource = await self.api.resource()
        self.client = await self.api.client()
        if self.graph.name in SEAT_GRAPHS:
            self.owner = await self.api.book(
                graph="group_owner",
                resource_id=self.resource["resource_id"],
                start_time="2024-07-01T10:00:00Z",
                end_time="2024-07-01T11:00:00Z",
                max_seats=100,
            )

    async def new_booking(self) -> dict[str, Any]:
        self.n += 1
        body: dict[str, Any] = {"graph": self.graph.name, "client_id": self.client["client_id"]}
        if self.graph.name in SEAT_GRAPHS:
            body["owner_booking_id"] = self.owner["booking_id"]
        else:
            start = self.api.clock.now + timedelta(days=30 + self.n)
            body |= {
                "resource_id": self.resource["resource_id"],
                "start_time": start.isoformat(),
                "end_time": (start + timedelta(minutes=45)).isoformat(),
            }
            if self.graph.name == "group_owner":
                body["max_seats"] = 5
        booking = await self.api.book(**body)
        booking.pop("customer_token")  # the create answer's only
        return booking

    async def drive(self, booking: dict[str, Any], path: list[str]) -> dict[str, Any]:
        url = f"/v1/bookings/{booking['booking_id']}"
        for action in path:
            if action == "timeout":
                self.api.clock.advance(timedelta(minutes=15))  # past payment_due_at, on the grid
                r = await self.api.get(url)  # the read applies the due timeout
            elif action == "expire":
                self.api.clock.now = datetime.fromisoformat(booking["start_time"])
                r = await self.api.get(url)
            else:
                r = await self.api.put(f"{url}/{action}")
            assert r.status_code == 200, r.text
            booking = r.json()
        return booking


@pytest.mark.parametrize(("graph_name", "state"), CASES, ids=[f"{g}-{s}" for g, s in CASES])
async def test_every_action_in_every_state(api: Api, graph_name: str, state: str) -> None:
    graph = GRAPHS[graph_name]
    driver = Driver(api, graph)
    await driver.setup()
    path = path_to(graph, state)
    for action in sorted(ALL_ACTIONS | {"create", "timeout_now", "update"}):
        booking = await driver.drive(await driver.new_booking(), path)
        assert booking["status"] == state
        url = f"/v1/bookings/{booking['booking_id']}"
        history = (await api.get(f"{url}/history")).json()["data"]
        r = await api.put(f"{url}/{action}", {"message": f"try {action}"})
        t = graph.transition(state, action)
        if t is not None and not t.automatic:
            assert r.status_code == 200, (action, r.text)
            moved = r.json()
            assert moved["status"] == t.to
            assert moved["completed"] == graph.is_final(t.to)
            assert moved["available_actions"] == graph.manual_actions(t.to)
            after = (await api.get(f"{url}/history")).json()["data"]
            assert after[: len(history)] == history
            new = after[len(history)]
            assert (new["from"], new["action"], new["to"], new["message"]) == (
                state,
                action,
                t.to,
                f"try {action}",
            )
        else:
            assert r.status_code == 409, (action, r.text)
            assert r.json()["code"] == "invalid_action"
            assert r.json()["allowed_actions"] == graph.manual_actions(state)
            assert (await api.get(url)).json() == booking
            assert (await api.get(f"{url}/history")).json()["data"] == history
