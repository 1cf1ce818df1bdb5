"""Tenancy and keys: who may see and do what."""

from __future__ import annotations

import base64

import pytest

from tests.api.conftest import Api

SLOT = {"start_time": "2024-05-18T10:00:00Z", "end_time": "2024-05-18T11:00:00Z"}


@pytest.mark.parametrize(
    "header",
    [None, "Bearer sk_unknown", "Bearer ", "Token abc", "Basic !!!", "Basic " + "OnNrX25v"],
)
async def test_missing_or_unknown_key_is_401(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    r = await api.http.get("/v1/resources", headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["code"] == "unauthenticated"


async def test_basic_auth_with_empty_user(api: Api) -> None:
    token = base64.b64encode(f":{api.secret_key}".encode()).decode()
    r = await api.http.get("/v1/resources", headers={"Authorization": f"Basic {token}"})
    assert r.status_code == 200
    named = base64.b64encode(f"user:{api.secret_key}".encode()).decode()
    r = await api.http.get("/v1/resources", headers={"Authorization": f"Basic {named}"})
    assert r.status_code == 401


async def test_public_key_reads_resources_and_creates_bookings_only(api: Api) -> None:
    resource = await api.resource()
    await api.client()
    public = api.as_key(api.public_key)
    assert (await public.get("/v1/resources")).status_code == 200
    assert (await public.get(f"/v1/resources/{resource['resource_id']}")).status_code == 200
    r = await public.post(
        "/v1/bookings",
        {
            "resource_id": resource["resource_id"],
            "customer": {"name": "A", "email": "a@b.cd"},
            **SLOT,
        },
    )
    assert r.status_code == 201
    booking = r.json()["booking_id"]
    forbidden = [
        await public.post("/v1/resources", {"name": "x", "timezone": "UTC"}),
        await public.put(f"/v1/resources/{resource['resource_id']}", {"name": "y"}),
        await public.delete(f"/v1/resources/{resource['resource_id']}"),
        await public.get("/v1/clients"),
        await public.post("/v1/clients", {"name": "x"}),
        await public.get("/v1/bookings"),
        await public.get(f"/v1/bookings/{booking}"),
        await public.put(f"/v1/bookings/{booking}", {"details": "x"}),
        await public.delete(f"/v1/bookings/{booking}"),
        await public.put(f"/v1/bookings/{booking}/complete"),
        await public.get(f"/v1/bookings/{booking}/history"),
    ]
    assert [r.status_code for r in forbidden] == [403] * len(forbidden)
    assert {r.json()["code"] for r in forbidden} == {"forbidden"}
    # None of the forbidden calls changed anything.
    got = (await api.get(f"/v1/bookings/{booking}")).json()
    assert (got["status"], got["details"]) == ("confirmed", None)


async def test_other_apps_objects_are_404_and_never_listed(api: Api, other_api: Api) -> None:
    resource = await api.resource()
    client = await api.client()
    booking = await api.book(
        resource_id=resource["resource_id"], client_id=client["client_id"], **SLOT
    )
    rid, cid, bid = resource["resource_id"], client["client_id"], booking["booking_id"]
    for path in (
        f"/v1/resources/{rid}",
        f"/v1/clients/{cid}",
        f"/v1/bookings/{bid}",
        f"/v1/bookings/{bid}/history",
    ):
        r = await other_api.get(path)
        assert r.status_code == 404, path
        assert r.json()["code"] == "not_found"
    assert (await other_api.delete(f"/v1/bookings/{bid}")).status_code == 404
    assert (await other_api.put(f"/v1/bookings/{bid}/cancel")).status_code == 404
    assert (await other_api.put(f"/v1/resources/{rid}", {"name": "mine"})).status_code == 404
    assert (await other_api.delete(f"/v1/resources/{rid}")).status_code == 404
    for path in ("/v1/resources", "/v1/clients", "/v1/bookings"):
        assert (await other_api.get(path)).json()["data"] == []
    # Another app cannot book my resource, or for my client: unknown to it (422, field path).
    own = await other_api.client()
    r = await other_api.post(
        "/v1/bookings", {"resource_id": rid, "client_id": own["client_id"], **SLOT}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "resource_id"
    own_resource = await other_api.resource()
    r = await other_api.post(
        "/v1/bookings", {"resource_id": own_resource["resource_id"], "client_id": cid, **SLOT}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "client_id"
    # And my booking is untouched.
    assert (await api.get(f"/v1/bookings/{bid}")).json()["status"] == "confirmed"


async def test_unknown_route_and_method_are_problems(api: Api) -> None:
    r = await api.get("/v1/nothing")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    r = await api.http.patch("/v1/resources", headers={"Authorization": f"Bearer {api.key}"})
    assert r.status_code == 405
    assert r.json()["code"] == "method_not_allowed"
    r = await api.get("/v1/bookings/not-a-uuid")
    assert r.status_code == 404  # no booking can have that id
