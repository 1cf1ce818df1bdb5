"""No lost updates: ETag on reads, If-Match on changes (412, 428), If-None-Match (304)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import Api


async def send(
    api: Api, method: str, path: str, body: Any = None, **headers: str
) -> httpx.Response:
    sent = {"Authorization": f"Bearer {api.key}"}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    return await api.http.request(method, path, json=body, headers=sent)


async def booking(api: Api, graph: str = "confirm_decline") -> dict[str, Any]:
    resource, client = await api.resource(), await api.client()
    return await api.book(
        graph=graph,
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time="2024-06-03T10:00:00Z",
        end_time="2024-06-03T11:00:00Z",
    )


async def test_a_stale_if_match_is_412_with_the_current_version(api: Api) -> None:
    b = await booking(api)
    path = f"/v1/bookings/{b['booking_id']}"
    read = await send(api, "GET", path)
    assert read.headers["etag"] == '"1"'
    assert read.json()["version"] == 1
    # Two people edit the same booking; the first one wins.
    first = await send(api, "PUT", path, {"details": "first"}, If_Match='"1"')
    assert first.status_code == 200
    assert first.headers["etag"] == '"2"'
    second = await send(api, "PUT", path, {"details": "second"}, If_Match='"1"')
    assert second.status_code == 412
    body = second.json()
    assert body["code"] == "precondition_failed"
    assert body["current_version"] == 2
    assert body["detail"] == (
        "This object is at version 2, not 1. Read it again, re-apply your change, and send the "
        "new ETag."
    )
    assert second.headers["etag"] == '"2"'
    assert (await send(api, "GET", path)).json()["details"] == "first"
    # With the fresh version the change goes through.
    third = await send(api, "PUT", path, {"details": "second"}, If_Match='"2"')
    assert third.status_code == 200
    assert third.json()["details"] == "second"


async def test_a_version_that_never_was_is_412_without_saying_it_changed(api: Api) -> None:
    b = await booking(api)
    r = await send(api, "PUT", f"/v1/bookings/{b['booking_id']}", {"details": "x"}, If_Match='"7"')
    assert r.status_code == 412
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == (
        "This object is at version 1, not 7. Read it again, re-apply your change, and send the "
        "new ETag."
    )
    assert r.json()["current_version"] == 1


async def test_actions_and_cancel_honour_if_match(api: Api) -> None:
    b = await booking(api)
    path = f"/v1/bookings/{b['booking_id']}"
    stale = await send(api, "PUT", f"{path}/confirm", If_Match='"7"')
    assert stale.status_code == 412
    assert (await send(api, "GET", path)).json()["status"] == "tentative"
    ok = await send(api, "PUT", f"{path}/confirm", If_Match='"1"')
    assert ok.status_code == 200
    assert ok.headers["etag"] == '"2"'
    assert (await send(api, "DELETE", path, If_Match='"1"')).status_code == 412
    assert (await send(api, "DELETE", path, If_Match="*")).status_code == 200


async def test_if_none_match_gives_304(api: Api) -> None:
    b = await booking(api)
    path = f"/v1/bookings/{b['booking_id']}"
    r = await send(api, "GET", path, If_None_Match='"1"')
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == '"1"'
    assert (await send(api, "GET", path, If_None_Match='"0", W/"1"')).status_code == 304
    await send(api, "PUT", f"{path}/confirm")
    changed = await send(api, "GET", path, If_None_Match='"1"')
    assert changed.status_code == 200
    assert changed.json()["status"] == "confirmed"


@pytest.mark.parametrize("kind", ["resources", "clients", "webhooks"])
async def test_resources_clients_webhooks_have_versions(api: Api, kind: str) -> None:
    if kind == "resources":
        made = await api.resource()
        path, change, method = f"/v1/resources/{made['resource_id']}", {"name": "B"}, "PUT"
    elif kind == "clients":
        made = await api.client()
        path, change, method = f"/v1/clients/{made['client_id']}", {"name": "B"}, "PUT"
    else:
        made = (await api.post("/v1/webhooks", {"url": "https://example.com/h"})).json()
        path, change, method = f"/v1/webhooks/{made['webhook_id']}", {"description": "B"}, "PATCH"
    assert made["version"] == 1
    read = await send(api, "GET", path)
    assert read.headers["etag"] == '"1"'
    assert (await send(api, "GET", path, If_None_Match='"1"')).status_code == 304
    assert (await send(api, method, path, change, If_Match='"1"')).status_code == 200
    stale = await send(api, method, path, change, If_Match='"1"')
    assert stale.status_code == 412
    assert stale.json()["current_version"] == 2
    assert (await send(api, "GET", path)).headers["etag"] == '"2"'


async def test_a_malformed_if_match_matches_nothing(api: Api) -> None:
    b = await booking(api)
    r = await send(api, "PUT", f"/v1/bookings/{b['booking_id']}", {"details": "x"}, If_Match="1")
    assert r.status_code == 412
    assert "ETag" in r.json()["detail"]


async def test_require_if_match_makes_it_mandatory(api: Api) -> None:
    b = await booking(api)
    path = f"/v1/bookings/{b['booking_id']}"
    assert (await api.put("/v1/app", {"require_if_match": True})).status_code == 200
    assert (await api.get("/v1/app")).json()["require_if_match"] is True
    r = await send(api, "PUT", path, {"details": "x"})
    assert r.status_code == 428
    assert r.json()["code"] == "precondition_required"
    assert r.json()["current_version"] == 1
    assert (await send(api, "PUT", f"{path}/confirm")).status_code == 428
    assert (await send(api, "DELETE", path)).status_code == 428
    assert (await send(api, "PUT", path, {"details": "x"}, If_Match='"1"')).status_code == 200
    # Creating needs no precondition.
    assert (await api.post("/v1/clients", {"name": "New"})).status_code == 201
    assert (await api.put("/v1/app", {"require_if_match": False})).status_code == 200
    assert (await send(api, "PUT", path, {"details": "y"})).status_code == 200
