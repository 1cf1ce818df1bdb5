"""Every operation in /openapi.json, one rule at a time (issue 10): no key is 401; the public key is
403 unless the operation is one a booking page needs; another app's object is 404; a body over
the limit is 413. A new route is covered the day it is added, because the list comes from the
document, not from this file."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.api.conftest import Api

SLOT = {"start_time": "2024-05-18T10:00:00Z", "end_time": "2024-05-18T11:00:00Z"}
SOME_ID = "00000000-0000-0000-0000-000000000001"
WRITES = ("post", "put", "patch", "delete")

# What the browser key may call (issue 10, "The browser key, least privilege"; docs/security.md),
# written out here rather than read from the code under test.
PUBLIC = {
    ("post", "/v1/bookings"),
    ("get", "/v1/resources"),
    ("get", "/v1/resources/{resource_id}"),
    ("get", "/v1/resources/{resource_id}/availability"),
    ("get", "/v1/resources/{resource_id}/freebusy"),
    ("get", "/v1/freebusy"),
    ("get", "/v1/availability"),
    ("get", "/v1/availability/dates"),
    ("get", "/v1/availability/groups"),
    ("get", "/v1/graphs"),
    ("get", "/v1/graphs/{name}"),
    ("get", "/v1/ping"),
    ("post", "/v2/bookings"),
    ("get", "/v2/bookings/groups"),
    ("get", "/v2/bookings/groups/{booking_id}"),
    ("post", "/v2/availability"),
    ("get", "/v2/resources"),
    ("get", "/v2/resources/{resource_id}"),
    ("get", "/v2/projects/embed/{project_id}"),
    ("get", "/v2/projects/hosted/{slug}"),
}
# Reached without an API key: the secret is in the path.
KEYLESS = {("get", "/ical/{token}.ics")}


async def _operations(api: Api) -> list[tuple[str, str, dict[str, Any]]]:
    doc = (await api.http.get("/openapi.json")).json()
    return [
        (method, path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in ("get", *WRITES)
    ]


def _url(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: values.get(m.group(1), SOME_ID), path)


async def _send(api: Api, method: str, url: str, key: str | None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers |= kw.pop("headers", {})
    return await api.http.request(method.upper(), url, headers=headers, **kw)


async def test_the_document_lists_every_route_this_test_knows(api: Api) -> None:
    known = {(m, p) for m, p, _ in await _operations(api)}
    assert known >= PUBLIC, sorted(PUBLIC - known)
    assert known >= KEYLESS


@pytest.mark.slow  # every route, one request each
async def test_no_key_is_401_everywhere(api: Api) -> None:
    wrong = []
    for method, path, op in await _operations(api):
        if (method, path) in KEYLESS:
            continue
        r = await _send(api, method, _url(path, {}), None)
        if r.status_code != 401 or "401" not in op["responses"]:
            wrong.append((method, path, r.status_code))
    assert wrong == []


async def test_the_public_key_is_403_unless_a_booking_page_needs_the_route(api: Api) -> None:
    wrong = []
    for method, path, op in await _operations(api):
        if (method, path) in KEYLESS:
            continue
        r = await _send(api, method, _url(path, {}), api.public_key, json={})
        public = (method, path) in PUBLIC
        if public and r.status_code in (401, 403):
            wrong.append((method, path, r.status_code, "public route refused"))
        if not public and (r.status_code != 403 or "403" not in op["responses"]):
            wrong.append((method, path, r.status_code, "not public"))
    assert wrong == []


async def _objects(api: Api) -> dict[str, str]:
    """One object of every kind in `api`'s app, by the path parameter that names it."""
    resource = await api.resource(timezone="UTC")
    rid = resource["resource_id"]
    client = await api.client()
    booking = await api.book(resource_id=rid, client_id=client["client_id"], **SLOT)
    r = await api.post(
        f"/v1/resources/{rid}/blocks",
        {"start_time": "2024-05-19T10:00:00Z", "end_time": "2024-05-19T11:00:00Z"},
    )
    assert r.status_code == 201, r.text
    block = r.json()
    r = await api.post("/v1/webhooks", {"url": "https://hooks.example/slotgraph"})
    assert r.status_code == 201, r.text
    webhook = r.json()
    r = await api.post(
        "/v1/pages",
        {"slug": "every-route", "title": "T", "resource_ids": [rid], "durations": ["PT30M"]},
    )
    assert r.status_code == 201, r.text
    page = r.json()
    r = await api.post("/v2/projects", {"name": "every route", "slug": "every-route"})
    assert r.status_code == 201, r.text
    project = r.json()["data"]
    events = (await api.get("/v1/events")).json()["data"]
    return {
        "resource_id": rid,
        "client_id": client["client_id"],
        "booking_id": booking["booking_id"],
        "block_id": block["block_id"],
        "webhook_id": webhook["webhook_id"],
        "page_id": page["page_id"],
        "project_id": project["id"],
        "slug": "every-route",
        "event_id": events[0]["event_id"],
        "action": "cancel",
    }


# A request these operations accept (anything else would be refused before the object is looked up).
VALID: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/v1/resources/{resource_id}/blocks"): {"json": SLOT},
    ("get", "/v1/resources/{resource_id}/freebusy"): {
        "params": {"start": SLOT["start_time"], "end": SLOT["end_time"]}
    },
    ("put", "/v1/resources/{resource_id}/calendar"): {
        "json": {"url": "https://dav.example/cal/", "username": "u", "password": "p"}
    },
    ("post", "/v2/bookings/{booking_id}/reschedule"): {
        "json": {"start": SLOT["start_time"], "end": SLOT["end_time"]}
    },
}

# Operations whose path names no object of an app (a graph is the same for every app).
NOT_OWNED = {("get", "/v1/graphs/{name}")}


async def test_another_apps_object_is_404(api: Api, other_api: Api) -> None:
    mine = await _objects(api)
    wrong = []
    for method, path, op in await _operations(api):
        if "{" not in path or (method, path) in KEYLESS | NOT_OWNED:
            continue
        url = _url(path, mine)
        request = VALID.get((method, path), {"json": {}})
        r = await _send(other_api, method, url, other_api.secret_key, **request)
        if r.status_code != 404 or "404" not in op["responses"]:
            wrong.append((method, path, r.status_code, r.text[:200]))
    assert wrong == [], "\n".join(map(str, wrong))
    # and nothing of mine changed
    got = (await api.get(f"/v1/bookings/{mine['booking_id']}")).json()
    assert got["status"] == "confirmed"


LIMIT = 64 * 1024  # issue 10: a request body is at most 64 KiB by default


async def test_no_key_is_401_whatever_the_body(api: Api) -> None:
    """The key is checked before the body is read: malformed or oversized, no key is 401."""
    wrong = []
    for method, path, op in await _operations(api):
        if "requestBody" not in op or (method, path) in KEYLESS:
            continue
        for body in (b'{"start_time": ', b"[" * 100_000, b"x" * (LIMIT + 1)):
            r = await _send(
                api, method, _url(path, {}), None,
                content=body, headers={"Content-Type": "application/json"},
            )  # fmt: skip
            if r.status_code != 401:
                wrong.append((method, path, len(body), r.status_code))
    assert wrong == [], "\n".join(map(str, wrong))


async def test_a_body_over_the_limit_is_413(api: Api) -> None:
    wrong = []
    for method, path, op in await _operations(api):
        if "requestBody" not in op:
            continue
        body = b'{"meta": "' + b"x" * LIMIT + b'"}'
        r = await _send(
            api, method, _url(path, {}), api.secret_key,
            content=body, headers={"Content-Type": "application/json"},
        )  # fmt: skip
        if r.status_code != 413 or "413" not in op["responses"]:
            wrong.append((method, path, r.status_code, r.text[:200]))
    assert wrong == [], "\n".join(map(str, wrong))
