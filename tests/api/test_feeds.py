"""Secret iCalendar feeds and free/busy, read back with the `icalendar` library."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import httpx
import icalendar
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.api.app import create_app
from slotgraph.appsettings import AppSettings
from tests.api.conftest import TEST_SETTINGS, Api


async def feed_path(api: Api, resource: dict[str, Any]) -> str:
    r = await api.get(f"/v1/resources/{resource['resource_id']}")
    assert r.status_code == 200, r.text
    url = r.json()["feed_url"]
    assert url.startswith("http://test/ical/")
    assert url.endswith(".ics")
    return urlsplit(url).path


async def fetch(api: Api, path: str, **headers: str) -> Any:
    return await api.http.get(path, headers=headers)  # no API key: the token is the secret


def events(body: bytes) -> dict[str, icalendar.Event]:
    cal = icalendar.Calendar.from_ical(body)
    return {str(e["UID"]): e for e in cal.walk("VEVENT")}


async def booked(api: Api, resource: dict[str, Any], start: str, end: str, **kw: Any) -> Any:
    client = await api.client()
    return await api.book(
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time=start,
        end_time=end,
        **kw,
    )


async def test_feed_url_is_for_the_secret_key_only(api: Api) -> None:
    resource = await api.resource()
    path = await feed_path(api, resource)
    assert path == await feed_path(api, resource)  # stable until rotated
    public = await api.as_key(api.public_key).get(f"/v1/resources/{resource['resource_id']}")
    assert public.status_code == 200
    assert public.json()["feed_url"] is None
    listed = await api.get("/v1/resources")
    assert [r["feed_url"] for r in listed.json()["data"]] == [None]


async def test_feed_lists_holding_bookings_with_uid_sequence_status(api: Api) -> None:
    resource = await api.resource()
    path = await feed_path(api, resource)
    kept = await booked(api, resource, "2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z")
    asked = await booked(
        api, resource, "2024-05-03T10:00:00Z", "2024-05-03T11:00:00Z", graph="instant_payment"
    )
    gone = await booked(api, resource, "2024-05-04T10:00:00Z", "2024-05-04T11:00:00Z")
    assert (await api.delete(f"/v1/bookings/{gone['booking_id']}")).status_code == 200

    r = await fetch(api, path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/calendar; charset=utf-8"
    found = events(r.content)
    assert set(found) == {kept["booking_id"], asked["booking_id"]}
    first = found[kept["booking_id"]]
    assert first.decoded("DTSTART").isoformat() == "2024-05-02T10:00:00+00:00"
    assert first.decoded("DTEND").isoformat() == "2024-05-02T11:00:00+00:00"
    assert (str(first["STATUS"]), str(first["SUMMARY"]), int(first["SEQUENCE"])) == (
        "CONFIRMED",
        "Busy",
        0,
    )
    assert str(found[asked["booking_id"]]["STATUS"]) == "TENTATIVE"

    moved = await api.put(
        f"/v1/bookings/{kept['booking_id']}",
        {"start_time": "2024-05-02T12:00:00Z", "end_time": "2024-05-02T13:00:00Z"},
    )
    assert moved.status_code == 200, moved.text
    again = events((await fetch(api, path)).content)[kept["booking_id"]]
    assert again.decoded("DTSTART").isoformat() == "2024-05-02T12:00:00+00:00"
    assert int(again["SEQUENCE"]) == 1


async def test_summary_shows_details_when_the_resource_says_so(api: Api) -> None:
    resource = await api.resource(feed_shows_details=True)
    assert resource["feed_shows_details"] is True
    b = await booked(
        api, resource, "2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z", details="Root canal\nBring X"
    )
    event = events((await fetch(api, await feed_path(api, resource))).content)[b["booking_id"]]
    assert str(event["SUMMARY"]) == "Root canal"
    assert str(event["DESCRIPTION"]) == "Root canal\nBring X"
    r = await api.put(f"/v1/resources/{resource['resource_id']}", {"feed_shows_details": False})
    assert r.json()["feed_shows_details"] is False
    event = events((await fetch(api, await feed_path(api, resource))).content)[b["booking_id"]]
    assert str(event["SUMMARY"]) == "Busy"
    assert "DESCRIPTION" not in event


async def test_etag_and_if_none_match(api: Api) -> None:
    resource = await api.resource()
    path = await feed_path(api, resource)
    first = await fetch(api, path)
    etag = first.headers["etag"]
    same = await fetch(api, path, **{"If-None-Match": etag})
    assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", etag)
    await booked(api, resource, "2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z")
    changed = await fetch(api, path, **{"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert len(events(changed.content)) == 1


async def test_if_none_match_compares_weakly_and_takes_a_star(api: Api) -> None:
    # RFC 9110 13.1.2: If-None-Match compares weakly. nginx with gzip (the usual proxy in
    # front of an ASGI server) passes the ETag on as W/"...", and calendar programs send that
    # back. Before, the feed matched only the strong tag as written: behind such a proxy every
    # subscriber's refresh (each 15 minutes) rendered the whole feed again.
    resource = await api.resource()
    path = await feed_path(api, resource)
    etag = (await fetch(api, path)).headers["etag"]
    for given in (f"W/{etag}", f'"other", W/{etag}', "*"):
        same = await fetch(api, path, **{"If-None-Match": given})
        assert (same.status_code, same.content) == (304, b""), given
    assert (await fetch(api, path, **{"If-None-Match": 'W/"other"'})).status_code == 200


async def test_rotate_kills_the_old_url_at_once(api: Api, other_api: Api) -> None:
    resource = await api.resource()
    old = await feed_path(api, resource)
    rotate = f"/v1/resources/{resource['resource_id']}/feed/rotate"
    assert (await other_api.post(rotate)).status_code == 404
    assert (await api.as_key(api.public_key).post(rotate)).status_code == 403
    r = await api.post(rotate)
    assert r.status_code == 200
    new = urlsplit(r.json()["feed_url"]).path
    assert new != old
    assert (await fetch(api, old)).status_code == 404
    assert (await fetch(api, new)).status_code == 200
    assert await feed_path(api, resource) == new


async def test_a_new_encryption_key_kills_every_old_url(api: Api, engine: AsyncEngine) -> None:
    """docs/calendars.md: setting or changing the first encryption key (the old one leaked, say,
    with a copy of the database, from which the URLs can be computed) changes every feed URL
    and the old ones answer 404. Before, an old URL answered 200 until the secret key happened
    to read its resource again: the stored hash was still the old token's."""
    resource = await api.resource()
    old = await feed_path(api, resource)
    assert (await fetch(api, old)).status_code == 200
    for _ in range(2):  # the first key set, then another
        key = SecretStr(Fernet.generate_key().decode())
        settings = TEST_SETTINGS.model_copy(update={"encryption_key": key})
        app = create_app(settings, engine=engine, clock=api.clock)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as http:
            restarted = Api(http, api.secret_key, api.public_key, api.clock, api.backend)
            assert (await fetch(restarted, old)).status_code == 404
            new = await feed_path(restarted, resource)
            assert new != old
            assert (await fetch(restarted, new)).status_code == 200
            old = new


@pytest.mark.parametrize(
    "path", ["/ical/nope.ics", "/ical/" + "A" * 32 + ".ics", "/ical/" + "%2F" * 40 + ".ics"]
)
async def test_unknown_feeds_are_404(api: Api, path: str) -> None:
    r = await fetch(api, path)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


async def test_feed_guessing_is_rate_limited_per_address_and_the_probes_are_not(
    api: Api,
) -> None:
    resource = await api.resource()
    path = await feed_path(api, resource)
    limit = AppSettings().rate_limits.public_per_minute  # a visitor's limit, as on the pages
    statuses = []
    for n in range(2 * limit):  # guessing tokens: each guess is a lookup, so each is counted
        guess = await fetch(api, f"/ical/{n:032d}.ics")
        statuses.append(guess.status_code)
        if guess.status_code != 404:
            break
    # at least `limit` go through (more if a minute turns meanwhile: a sliding window)
    assert statuses[-1] == 429, statuses[-3:]
    assert len(statuses) > limit
    assert guess.headers["content-type"] == "application/problem+json"
    assert guess.json()["code"] == "rate_limited"
    assert int(guess.headers["retry-after"]) >= 1
    assert (await fetch(api, path)).status_code == 429  # the real token too, from here
    # a load balancer at the same address still gets its answer (readyz: 503, no worker here)
    assert (await api.http.get("/healthz")).status_code == 200
    assert (await api.http.get("/readyz")).status_code == 503
    app = api.http._transport.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as elsewhere:
        assert (await elsewhere.get(path)).status_code == 200


async def test_freebusy_merges_bookings_buffers_and_blocks(api: Api) -> None:
    resource = await api.resource(buffer_after="PT15M")
    rid = resource["resource_id"]
    await booked(api, resource, "2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z")
    await booked(api, resource, "2024-05-02T11:15:00Z", "2024-05-02T12:00:00Z")
    block = await api.post(
        f"/v1/resources/{rid}/blocks",
        {"start_time": "2024-05-02T15:00:00Z", "end_time": "2024-05-02T18:00:00Z"},
    )
    assert block.status_code == 201, block.text
    r = await api.get(
        f"/v1/resources/{rid}/freebusy", start="2024-05-02T08:00:00Z", end="2024-05-02T17:00:00Z"
    )
    assert r.status_code == 200, r.text
    assert r.json()["busy"] == [
        # 10:00-11:15 (buffer) touches 11:15-12:15: one interval; the block is clipped at 17:00
        {"start_time": "2024-05-02T10:00:00Z", "end_time": "2024-05-02T12:15:00Z"},
        {"start_time": "2024-05-02T15:00:00Z", "end_time": "2024-05-02T17:00:00Z"},
    ]
    # the public key may read it too, as it may read availability
    public = api.as_key(api.public_key)
    r2 = await public.get(
        f"/v1/resources/{rid}/freebusy", start="2024-05-02T08:00:00Z", end="2024-05-02T17:00:00Z"
    )
    assert r2.json() == r.json()


async def test_freebusy_as_vfreebusy_for_several_resources(api: Api) -> None:
    a = await api.resource(email="berg@example.com")
    b = await api.resource(name="Room 2")
    await booked(api, a, "2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z")
    r = await api.http.get(
        "/v1/freebusy",
        params={
            "resource_id": [a["resource_id"], b["resource_id"]],
            "start": "2024-05-02T00:00:00Z",
            "end": "2024-05-03T00:00:00Z",
        },
        headers={"Authorization": f"Bearer {api.key}", "Accept": "text/calendar"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/calendar; charset=utf-8"
    blocks = icalendar.Calendar.from_ical(r.content).walk("VFREEBUSY")
    by_resource = {str(fb["X-SLOTGRAPH-RESOURCE-ID"]): fb for fb in blocks}
    assert set(by_resource) == {a["resource_id"], b["resource_id"]}
    busy_a = by_resource[a["resource_id"]]
    assert str(busy_a["ATTENDEE"]) == "mailto:berg@example.com"
    periods = busy_a["FREEBUSY"]
    periods = periods if isinstance(periods, list) else [periods]
    assert [(p.dt[0].isoformat(), p.dt[1].isoformat()) for p in periods] == [
        ("2024-05-02T10:00:00+00:00", "2024-05-02T11:00:00+00:00")
    ]
    assert "FREEBUSY" not in by_resource[b["resource_id"]]
    as_json = await api.http.get(
        "/v1/freebusy",
        params={
            "resource_id": [a["resource_id"], b["resource_id"]],
            "start": "2024-05-02T00:00:00Z",
            "end": "2024-05-03T00:00:00Z",
        },
        headers={"Authorization": f"Bearer {api.key}"},
    )
    assert [len(x["busy"]) for x in as_json.json()["resources"]] == [1, 0]


async def test_freebusy_bad_input(api: Api, other_api: Api) -> None:
    resource = await api.resource()
    rid = resource["resource_id"]
    path = f"/v1/resources/{rid}/freebusy"
    day = {"start": "2024-05-02T00:00:00Z", "end": "2024-05-03T00:00:00Z"}
    assert (await other_api.get(path, **day)).status_code == 404
    r = await api.get(path, start="2024-05-02T00:00:00Z", end="2024-09-02T00:00:00Z")
    assert (r.status_code, r.json()["code"]) == (422, "validation_error")
    r = await api.get(path, start="2024-05-02T00:00:00", end="2024-05-03T00:00:00Z")
    assert r.status_code == 422  # naive
    r = await other_api.get("/v1/freebusy", resource_id=rid, **day)
    assert r.status_code == 422
    assert (await api.http.get(path, params=day)).status_code == 401


async def test_the_feed_token_is_never_in_the_access_log(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    path = await feed_path(api, await api.resource())
    token = path.removeprefix("/ical/").removesuffix(".ics")
    with caplog.at_level(logging.INFO, logger="slotgraph.access"):
        assert (await fetch(api, path)).status_code == 200
        assert (await fetch(api, "/ical/not-a-feed.ics")).status_code == 404
    assert "GET /ical/[redacted] 200" in caplog.text
    assert token not in caplog.text
    assert "not-a-feed" not in caplog.text
