"""Webhooks through a real local receiver, with the worker driven by the test clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from slotgraph.api.app import create_app
from slotgraph.settings import Settings
from slotgraph.worker import Worker
from tests.api.conftest import TEST_SETTINGS, Api
from tests.receiver import Receiver, running_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
def worker(api: Api, engine: AsyncEngine) -> Worker:
    return Worker(engine, TEST_SETTINGS, clock=api.clock, jitter=lambda: 0.0, worker_id="test")


async def drain(worker: Worker) -> None:
    """Run worker cycles until there is nothing left to do now."""
    for _ in range(50):
        if not await worker.run_once():
            return
    raise AssertionError("the worker kept finding work")


async def hook(api: Api, url: str, **fields: Any) -> dict[str, Any]:
    r = await api.post("/v1/webhooks", {"url": url, **fields})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def one_booking(api: Api, *, day: int) -> dict[str, Any]:
    """A fresh resource and client, and an hour booked on 2024-06-<day>: one booking event."""
    resource, client = await api.resource(), await api.client()
    return await api.book(
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time=f"2024-06-{day:02d}T10:00:00Z",
        end_time=f"2024-06-{day:02d}T11:00:00Z",
    )


def verify(secret: str, received: Any) -> None:
    Webhook(secret).verify(received.body, received.headers)


async def test_every_graph_path_arrives_in_order_and_signed(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    endpoint = await hook(api, receiver.url, events=["booking.*"])
    assert endpoint["secret"].startswith("whsec_")
    resource = await api.resource()
    client = await api.client()
    start = api.clock.now + timedelta(days=2)

    def slot(hours: int) -> dict[str, Any]:
        s = start + timedelta(hours=hours)
        return {
            "resource_id": resource["resource_id"],
            "client_id": client["client_id"],
            "start_time": s.isoformat(),
            "end_time": (s + timedelta(hours=1)).isoformat(),
        }

    paths: dict[str, list[str]] = {}
    b = await api.book(**slot(0))
    await api.put(f"/v1/bookings/{b['booking_id']}", {"details": "moved"})
    await api.put(f"/v1/bookings/{b['booking_id']}/complete")
    paths[b["booking_id"]] = ["booking.confirmed", "booking.updated", "booking.completed"]
    b = await api.book(graph="confirm_decline", **slot(1))
    await api.put(f"/v1/bookings/{b['booking_id']}/confirm", {"message": "ok"})
    await api.put(f"/v1/bookings/{b['booking_id']}/cancel_by_customer")
    paths[b["booking_id"]] = [
        "booking.tentative",
        "booking.confirmed",
        "booking.cancelled_by_customer",
    ]
    b = await api.book(graph="instant_payment", **slot(2))
    await api.put(f"/v1/bookings/{b['booking_id']}/pay", {"payment_id": "pi_1"})
    paths[b["booking_id"]] = ["booking.tentative", "booking.paid"]
    owner = await api.book(
        graph="group_owner", max_seats=3, **{k: v for k, v in slot(3).items() if k != "client_id"}
    )
    seat = await api.book(
        graph="group_customer_payment",
        owner_booking_id=owner["booking_id"],
        client_id=client["client_id"],
    )
    await api.delete(f"/v1/bookings/{owner['booking_id']}")
    paths[owner["booking_id"]] = ["booking.confirmed", "booking.cancelled"]
    paths[seat["booking_id"]] = ["booking.tentative", "booking.cancelled_by_owner"]
    refused = await api.post("/v1/bookings", slot(2))  # held by the paid booking
    assert refused.status_code == 409  # rolled back, so no event

    await drain(worker)
    got: dict[str, list[str]] = {}
    for r in receiver.requests:
        verify(endpoint["secret"], r)
        assert r.headers["content-type"] == "application/json"
        assert r.headers["webhook-signature"].startswith("v1,")
        event = r.json
        assert r.headers["webhook-id"] == event["id"]
        got.setdefault(event["data"]["booking"]["booking_id"], []).append(event["type"])
    assert got == paths
    # The payload carries the booking as GET shows it at that moment, and the transition.
    paid = next(r.json for r in receiver.requests if r.json["type"] == "booking.paid")
    assert paid["data"]["previous_status"] == "tentative"
    assert paid["data"]["action"] == "pay"
    assert paid["data"]["booking"]["payment_id"] == "pi_1"
    confirmed = next(r.json for r in receiver.requests if r.json["data"]["action"] == "confirm")
    assert confirmed["data"]["message"] == "ok"
    # The event log shows the same events, with the same payload.
    listed = (await api.get("/v1/events", booking_id=seat["booking_id"])).json()["data"]
    assert [e["type"] for e in listed] == paths[seat["booking_id"]]
    by_id = {r.json["id"]: r.json for r in receiver.requests}
    assert all(by_id[e["event_id"]] == e["payload"] for e in listed)


async def test_retries_on_schedule_until_success(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    endpoint = await hook(api, receiver.url)
    receiver.script = [500, 503, 500]
    await one_booking(api, day=1)
    await drain(worker)
    assert len(receiver.requests) == 1
    for wait in (
        timedelta(seconds=4),
        timedelta(seconds=1),
        timedelta(minutes=5),
        timedelta(minutes=30),
    ):
        api.clock.advance(wait)
        await drain(worker)
    assert len(receiver.requests) == 4
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    log = (await api.get(f"/v1/webhooks/{endpoint['webhook_id']}/deliveries")).json()["data"]
    assert [(a["attempt"], a["status_code"]) for a in log] == [
        (4, 200),
        (3, 500),
        (2, 503),
        (1, 500),
    ]
    assert log[0]["next_retry_at"] is None
    assert log[0]["response_body"] == '{"received": true, "status": 200}'
    assert [a["next_retry_at"] for a in log[1:]] == [
        "2024-05-01T09:35:05Z",
        "2024-05-01T09:05:05Z",
        "2024-05-01T09:00:05Z",
    ]
    api.clock.advance(timedelta(hours=12))
    await drain(worker)
    assert len(receiver.requests) == 4


async def test_gives_up_after_the_schedule_and_can_be_retried(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    endpoint = await hook(api, receiver.url)
    receiver.script = [500] * 8
    await one_booking(api, day=1)
    for _ in range(10):
        await drain(worker)
        api.clock.advance(timedelta(hours=10))
    assert len(receiver.requests) == 8
    log = (await api.get(f"/v1/webhooks/{endpoint['webhook_id']}/deliveries")).json()["data"]
    assert log[0]["attempt"] == 8
    assert log[0]["next_retry_at"] is None
    assert (await api.get(f"/v1/webhooks/{endpoint['webhook_id']}")).json()["enabled"] is True
    event_id = log[0]["event_id"]
    r = await api.post(f"/v1/webhooks/{endpoint['webhook_id']}/deliveries/{event_id}/retry")
    assert r.status_code == 202
    assert r.json()["status"] == "pending"
    await drain(worker)
    assert len(receiver.requests) == 9
    assert receiver.requests[-1].headers["webhook-id"] == event_id


async def test_a_later_event_waits_for_an_earlier_one_of_the_same_booking(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    await hook(api, receiver.url)
    receiver.script = [500]
    resource, client = await api.resource(), await api.client()
    b = await api.book(
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time="2024-06-01T10:00:00Z",
        end_time="2024-06-01T11:00:00Z",
    )
    await api.delete(f"/v1/bookings/{b['booking_id']}")
    # Only b's first event can go out now (its cancellation waits behind it): it gets the 500.
    await drain(worker)
    assert [
        (r.json["data"]["booking"]["booking_id"], r.json["type"]) for r in receiver.requests
    ] == [(b["booking_id"], "booking.confirmed")]
    # While it waits for its retry, another booking's event is not held up; b's cancellation is.
    other = await api.book(
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time="2024-06-02T10:00:00Z",
        end_time="2024-06-02T11:00:00Z",
    )
    await drain(worker)
    sent = [(r.json["data"]["booking"]["booking_id"], r.json["type"]) for r in receiver.requests]
    assert (other["booking_id"], "booking.confirmed") in sent
    assert (b["booking_id"], "booking.cancelled") not in sent
    api.clock.advance(timedelta(seconds=6))
    await drain(worker)
    of_b = [
        t
        for bid, t in (
            (r.json["data"]["booking"]["booking_id"], r.json["type"]) for r in receiver.requests
        )
        if bid == b["booking_id"]
    ]
    assert of_b == ["booking.confirmed", "booking.confirmed", "booking.cancelled"]


async def test_410_disables_at_once_and_says_so(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    with running_receiver() as watcher:
        gone = await hook(api, receiver.url, events=["booking.*"])
        watch = await hook(api, watcher.url, events=["webhook.*"])
        receiver.script = [410]
        await one_booking(api, day=1)
        await drain(worker)
        got = (await api.get(f"/v1/webhooks/{gone['webhook_id']}")).json()
        assert (got["enabled"], got["disabled_reason"]) == (
            False,
            "The receiver answered 410 Gone.",
        )
        assert [e["type"] for e in watcher.events()] == ["webhook.disabled"]
        assert watcher.events()[0]["data"]["webhook"]["webhook_id"] == gone["webhook_id"]
        verify(watch["secret"], watcher.requests[0])
        # Disabled endpoints get nothing more, until switched back on.
        await one_booking(api, day=2)
        await drain(worker)
        assert len(receiver.requests) == 1
        r = await api.http.patch(
            f"/v1/webhooks/{gone['webhook_id']}",
            json={"enabled": True},
            headers={"Authorization": f"Bearer {api.key}"},
        )
        assert (r.json()["enabled"], r.json()["disabled_reason"]) == (True, None)


async def test_five_days_without_success_disables(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    endpoint = await hook(api, receiver.url)
    receiver.script = [500] * 100
    resource, client = await api.resource(), await api.client()
    for day in range(6):
        await api.book(
            resource_id=resource["resource_id"],
            client_id=client["client_id"],
            start_time=f"2024-06-{day + 1:02d}T10:00:00Z",
            end_time=f"2024-06-{day + 1:02d}T11:00:00Z",
        )
        await drain(worker)
        enabled = (await api.get(f"/v1/webhooks/{endpoint['webhook_id']}")).json()["enabled"]
        assert enabled is (day < 5), day
        api.clock.advance(timedelta(days=1))
    got = (await api.get(f"/v1/webhooks/{endpoint['webhook_id']}")).json()
    assert got["disabled_reason"] == "No successful delivery for 5 days."


async def test_a_success_restarts_the_five_days(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    # Failing from day 1, one success on day 4, failing again up to day 8: never five days
    # without a success, so the endpoint stays on (the success ends the failing streak).
    endpoint = await hook(api, receiver.url)
    resource, client = await api.resource(), await api.client()
    for day in range(8):
        receiver.script = [200] if day == 3 else [500] * 100
        await api.book(
            resource_id=resource["resource_id"],
            client_id=client["client_id"],
            start_time=f"2024-07-{day + 1:02d}T10:00:00Z",
            end_time=f"2024-07-{day + 1:02d}T11:00:00Z",
            notify=False,
        )
        await drain(worker)
        api.clock.advance(timedelta(days=1))
    got = (await api.get(f"/v1/webhooks/{endpoint['webhook_id']}")).json()
    assert (got["enabled"], got["disabled_reason"]) == (True, None)


async def test_rotation_signs_with_both_secrets_for_a_day(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    endpoint = await hook(api, receiver.url)
    r = await api.post(f"/v1/webhooks/{endpoint['webhook_id']}/rotate-secret")
    new = r.json()["secret"]
    assert new != endpoint["secret"]
    assert "secret" not in (await api.get(f"/v1/webhooks/{endpoint['webhook_id']}")).json()
    r = await api.post(f"/v1/webhooks/{endpoint['webhook_id']}/test")
    assert r.status_code == 202
    await drain(worker)
    first = receiver.requests[-1]
    assert first.json["type"] == "webhook.test"
    assert len(first.headers["webhook-signature"].split(" ")) == 2
    verify(new, first)
    verify(endpoint["secret"], first)
    api.clock.advance(timedelta(hours=24, seconds=1))
    await api.post(f"/v1/webhooks/{endpoint['webhook_id']}/test")
    await drain(worker)
    later = receiver.requests[-1]
    verify(new, later)
    with pytest.raises(WebhookVerificationError):
        verify(endpoint["secret"], later)


async def _created_without_private_networks(
    api: Api, engine: AsyncEngine, url: str
) -> httpx.Response:
    """POST /v1/webhooks for `url` to a server with private networks not allowed (the default)."""
    strict = Settings(run_worker=False, webhook_allow_private_networks=False)
    app = create_app(strict, engine=engine, clock=api.clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as h:
        return await h.post(
            "/v1/webhooks", json={"url": url}, headers={"Authorization": f"Bearer {api.key}"}
        )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        # 6to4 addresses that carry a private IPv4 address (2002:AABB:CCDD::/48 is
        # AA.BB.CC.DD), and IPv6 site-local (fec0::/10, deprecated, still routed by some
        # networks): Python 3.11's is_global takes both for public, and they were accepted.
        "http://[2002:7f00:1::1]/hook",
        "http://[2002:a01:203::1]/hook",
        "http://[2002:a9fe:a9fe::]/latest/meta-data",
        "http://[fec0::1]/hook",
        # NAT64 (64:ff9b::/96 carries the IPv4 address in its last 32 bits, and a network with
        # a NAT64 gateway sends it there), and the local-use NAT64 prefix 64:ff9b:1::/48:
        # judged by the address they carry (Python files all of 64:ff9b::/96 under the reserved
        # ::/8, the public ones too: test_public_addresses_are_accepted).
        "http://[64:ff9b::7f00:1]/hook",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
        "http://[64:ff9b:1::a01:203]/hook",
    ],
)
async def test_private_addresses_are_refused(api: Api, engine: AsyncEngine, url: str) -> None:
    r = await _created_without_private_networks(api, engine, url)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "url"
    assert (await api.get("/v1/webhooks")).json()["data"] == []


@pytest.mark.parametrize("url", ["http://8.8.8.8/hook", "http://[64:ff9b::808:808]/hook"])
async def test_public_addresses_are_accepted(api: Api, engine: AsyncEngine, url: str) -> None:
    """A public address, also as NAT64 gives it (an IPv6-only network's DNS64 answers every
    IPv4-only host as 64:ff9b::a.b.c.d): Python files 64:ff9b::/96 under the reserved ::/8,
    and such a network could send no webhook to an IPv4-only receiver."""
    r = await _created_without_private_networks(api, engine, url)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/hook", "http://u:p@x.com/"])
async def test_malformed_urls_are_refused(api: Api, url: str) -> None:
    r = await api.post("/v1/webhooks", {"url": url})
    assert r.status_code == 422
    r = await api.post("/v1/webhooks", {"url": "https://example.com/x", "events": ["booking"]})
    assert r.status_code == 422


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127\u30020\u30020\u30021", "\u2460\u2461\u2466.0.0.1"]
)
async def test_private_addresses_are_refused_again_at_send_time(
    api: Api, receiver: Receiver, engine: AsyncEngine, host: str
) -> None:
    """A URL allowed when it was made (private networks allowed then) is not sent to after they
    are not, however it spells the address: `127。0。0。1` (ideographic full stops) or
    `①②⑦.0.0.1` too, where the check's URL parser reads a name (left to the resolver) and the
    sender's (yarl) the address 127.0.0.1, which aiohttp connects to without any resolver."""
    url = receiver.url.replace("127.0.0.1", host)
    assert host in url
    endpoint = await hook(api, url)
    strict = Settings(run_worker=False, webhook_allow_private_networks=False)
    worker = Worker(engine, strict, clock=api.clock, jitter=lambda: 0.0)
    await api.post(f"/v1/webhooks/{endpoint['webhook_id']}/test")
    await drain(worker)
    assert receiver.requests == []
    log = (await api.get(f"/v1/webhooks/{endpoint['webhook_id']}/deliveries")).json()["data"]
    assert log[0]["status_code"] is None
    assert log[0]["error"].startswith("refused: "), log[0]


async def test_timers_run_by_the_worker(api: Api, receiver: Receiver, worker: Worker) -> None:
    await hook(api, receiver.url)
    resource, client = await api.resource(), await api.client()
    base = {"resource_id": resource["resource_id"], "client_id": client["client_id"]}
    held = await api.book(
        graph="instant_payment",
        **base,
        start_time="2024-05-01T12:00:00Z",
        end_time="2024-05-01T13:00:00Z",
    )
    done = await api.book(
        **base, start_time="2024-05-01T09:30:00Z", end_time="2024-05-01T10:00:00Z"
    )
    kept = await api.book(
        **base,
        start_time="2024-05-01T10:00:00Z",
        end_time="2024-05-01T10:30:00Z",
        auto_complete=False,
    )
    request = await api.book(
        graph="confirm_decline",
        **base,
        start_time="2024-05-01T11:00:00Z",
        end_time="2024-05-01T11:30:00Z",
    )
    api.clock.advance(timedelta(hours=2))  # 11:00: past the payment deadline and 10:00 + 1 h
    await drain(worker)
    types = [e["type"] for e in receiver.events()]
    for b, status in (
        (held, "unpaid"),
        (done, "completed"),
        (kept, "confirmed"),
        (request, "expired"),
    ):
        got = (await api.get(f"/v1/bookings/{b['booking_id']}")).json()
        assert got["status"] == status, b
        if status != "confirmed":
            assert f"booking.{status}" in types
            history = (await api.get(f"/v1/bookings/{b['booking_id']}/history")).json()["data"]
            assert history[-1]["actor_key_id"] is None


async def test_events_api(api: Api, other_api: Api) -> None:
    resource, client = await api.resource(), await api.client()
    bookings = [
        await api.book(
            resource_id=resource["resource_id"],
            client_id=client["client_id"],
            start_time=f"2024-06-0{d}T10:00:00Z",
            end_time=f"2024-06-0{d}T11:00:00Z",
        )
        for d in (1, 2, 3)
    ]
    await api.delete(f"/v1/bookings/{bookings[0]['booking_id']}")
    page = (await api.get("/v1/events", limit=2)).json()
    rest = (await api.get("/v1/events", limit=2, cursor=page["next_cursor"])).json()
    types = [e["type"] for e in page["data"] + rest["data"]]
    assert types == ["booking.confirmed"] * 3 + ["booking.cancelled"]
    cancelled = (await api.get("/v1/events", type="booking.cancelled")).json()["data"]
    assert len(cancelled) == 1
    assert cancelled[0]["payload"]["data"]["previous_status"] == "confirmed"
    one = await api.get(f"/v1/events/{cancelled[0]['event_id']}")
    assert one.json() == cancelled[0]
    assert (await other_api.get(f"/v1/events/{cancelled[0]['event_id']}")).status_code == 404
    assert (await other_api.get("/v1/events")).json()["data"] == []
    assert (await api.as_key(api.public_key).get("/v1/events")).status_code == 403
    assert (await api.as_key(api.public_key).get("/v1/webhooks")).status_code == 403


async def test_webhook_management(api: Api, other_api: Api) -> None:
    w = await hook(
        api, "https://example.com/a", events=["booking.confirmed", "booking.*"], description="CRM"
    )
    assert w["events"] == ["booking.*", "booking.confirmed"]
    path = f"/v1/webhooks/{w['webhook_id']}"
    r = await api.http.patch(
        path,
        json={"events": None, "description": "all"},
        headers={"Authorization": f"Bearer {api.key}"},
    )
    assert (r.json()["events"], r.json()["description"]) == (None, "all")
    assert (await other_api.get(path)).status_code == 404
    assert [x["webhook_id"] for x in (await api.get("/v1/webhooks")).json()["data"]] == [
        w["webhook_id"]
    ]
    assert (await api.delete(path)).status_code == 204
    assert (await api.get(path)).status_code == 404
    assert (await api.get("/v1/webhooks")).json()["data"] == []


async def test_redirects_are_not_followed(api: Api, receiver: Receiver, worker: Worker) -> None:
    endpoint = await hook(api, receiver.url)
    receiver.script = [302]
    await api.post(f"/v1/webhooks/{endpoint['webhook_id']}/test")
    await drain(worker)
    assert len(receiver.requests) == 1
    log = (await api.get(f"/v1/webhooks/{endpoint['webhook_id']}/deliveries")).json()["data"]
    assert (log[0]["status_code"], log[0]["next_retry_at"] is not None) == (302, True)


async def test_each_attempt_is_counted_by_its_outcome(
    api: Api, receiver: Receiver, worker: Worker
) -> None:
    # slotgraph_webhook_attempts_total{outcome}: what an operator alerts on (docs/operations.md).
    def counted(outcome: str) -> float:
        text_ = generate_latest().decode()
        for family in text_string_to_metric_families(text_):
            for s in family.samples:
                if s.name == "slotgraph_webhook_attempts_total" and s.labels == {
                    "outcome": outcome
                }:
                    return float(s.value)
        return 0.0

    success, failed = counted("success"), counted("http_error")
    receiver.script = [500]  # the first attempt fails, the retry succeeds
    await hook(api, receiver.url, events=["booking.*"])
    await one_booking(api, day=3)
    await drain(worker)
    assert (counted("success"), counted("http_error")) == (success, failed + 1)
    api.clock.now += timedelta(hours=1)  # past the first retry's wait
    await drain(worker)
    await one_booking(api, day=4)
    await drain(worker)
    assert (counted("success"), counted("http_error")) == (success + 2, failed + 1)
    assert len(receiver.requests) == 3
