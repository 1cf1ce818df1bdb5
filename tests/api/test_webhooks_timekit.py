"""The `timekit` webhook format through a real local receiver, beside Standard Webhooks.

The expected body and signature follow Timekit's documentation (developers.timekit.io, "Signed
webhooks" and "Webhooks"): the booking as GET /bookings/:id shows it, and `x-timekit-signature`,
the hex HMAC-SHA256 of the raw body with the shared secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from slotgraph.worker import Worker
from tests.api.conftest import TEST_SETTINGS, Api
from tests.receiver import Receiver, running_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


async def drain(worker: Worker) -> None:
    for _ in range(50):
        if not await worker.run_once():
            return
    raise AssertionError("the worker kept finding work")


async def test_timekit_format_beside_standard_webhooks(
    api: Api, engine: AsyncEngine, receiver: Receiver
) -> None:
    worker = Worker(engine, TEST_SETTINGS, clock=api.clock, jitter=lambda: 0.0, worker_id="t")
    tk = await api.post("/v1/webhooks", {"url": receiver.url + "/timekit", "format": "timekit"})
    std = await api.post("/v1/webhooks", {"url": receiver.url + "/standard"})
    assert tk.status_code == std.status_code == 201
    assert (tk.json()["format"], std.json()["format"]) == ("timekit", "standard")
    resource = await api.resource(name="Doc Brown")
    key = base64.b64encode(f":{api.secret_key}".encode()).decode()
    r = await api.http.post(
        "/v2/bookings",
        json={
            "resource_id": resource["resource_id"],
            "graph": "confirm_decline",
            "action": "create",
            "start": "2024-05-06T10:00:00+02:00",
            "end": "2024-05-06T11:00:00+02:00",
            "what": "Catch the lightning",
            "where": "Courthouse",
            "customer": {"name": "Marty McFly", "email": "marty@example.com"},
        },
        headers={"Authorization": f"Basic {key}"},
    )
    assert r.status_code == 201, r.text
    booking_id = r.json()["data"]["id"]
    await api.put(f"/v1/bookings/{booking_id}/confirm")
    await drain(worker)

    timekit = [x for x in receiver.requests if x.path.endswith("/timekit")]
    standard = [x for x in receiver.requests if x.path.endswith("/standard")]
    assert [x.json["state"] for x in timekit] == ["tentative", "confirmed"]
    assert [x.json["type"] for x in standard] == ["booking.tentative", "booking.confirmed"]
    first = timekit[0]
    expected = hmac.new(tk.json()["secret"].encode(), first.body.encode(), hashlib.sha256)
    assert first.headers["x-timekit-signature"] == expected.hexdigest()
    assert "webhook-signature" not in first.headers
    body = first.json
    assert (body["id"], body["graph"], body["completed"]) == (booking_id, "confirm_decline", False)
    assert body["available_actions"] == ["confirm", "decline", "cancel"]
    assert body["customers"][0]["email"] == "marty@example.com"
    assert body["event"]["what"] == "Catch the lightning"
    assert body["event"]["start"] == "2024-05-06T08:00:00+00:00"
    assert body["attributes"]["event_info"]["where"] == "Courthouse"
    assert body["user"]["name"] == "Doc Brown"
    # the standard endpoint still gets Standard Webhooks, verifiable with the reference library
    Webhook(std.json()["secret"]).verify(standard[0].body, standard[0].headers)


async def test_format_can_be_changed_and_is_checked(api: Api) -> None:
    r = await api.post("/v1/webhooks", {"url": "https://example.com/hook", "format": "xml"})
    assert r.status_code == 422
    made = await api.post("/v1/webhooks", {"url": "https://example.com/hook"})
    changed = await api.http.patch(
        f"/v1/webhooks/{made.json()['webhook_id']}",
        json={"format": "timekit"},
        headers={"Authorization": f"Bearer {api.secret_key}"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["format"] == "timekit"
