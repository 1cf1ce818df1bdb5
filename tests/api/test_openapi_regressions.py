"""Cases schemathesis found against the live server (tests/system/test_schemathesis.py), kept as
plain tests: each failed before its fix."""

from __future__ import annotations

from tests.api.conftest import Api

PROBLEM = "application/problem+json"


async def test_405_allows_every_method_of_the_path(api: Api) -> None:
    # each method is a route of its own; Starlette named only the first one's method
    r = await api.http.request("OPTIONS", "/v1/app", headers=api._headers())
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, PUT"
    assert r.headers["content-type"] == PROBLEM


async def test_an_idempotency_key_on_a_method_the_path_lacks_is_405(api: Api) -> None:
    resource = await api.resource()
    path = f"/v1/resources/{resource['resource_id']}/feed/rotate"
    headers = {**api._headers(), "Idempotency-Key": "k1"}
    assert (await api.http.post(path, headers=headers)).status_code == 200
    # the same key on PUT, which this path does not have: no such operation, not a reused key
    r = await api.http.put(path, headers=headers)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == "POST"


async def test_a_cursor_not_from_this_api_is_400_and_documented(api: Api) -> None:
    r = await api.get("/v1/clients", cursor="")
    assert r.status_code == 400
    doc = (await api.http.get("/openapi.json")).json()
    for path in ("/v1/clients", "/v1/resources", "/v1/bookings", "/v1/events"):
        assert "400" in doc["paths"][path]["get"]["responses"], path


async def test_an_invalid_body_is_422_whatever_if_match_says(api: Api) -> None:
    resource = await api.resource()
    path = f"/v1/resources/{resource['resource_id']}"
    headers = {**api._headers(), "If-Match": "null"}
    r = await api.http.put(path, json={"email": 5}, headers=headers)
    assert r.status_code == 422, r.text  # RFC 9110 13.2.1: the precondition is evaluated last
    r = await api.http.put(path, json={"name": "Room 2"}, headers=headers)
    assert r.status_code == 412, r.text
    assert r.headers["etag"] == '"1"'
    r = await api.http.put(
        "/v1/resources/00000000-0000-0000-0000-000000000000", json={}, headers=headers
    )
    assert r.status_code == 404


async def test_a_number_is_not_a_date_time(api: Api) -> None:
    # pydantic reads 0.5 as a Unix timestamp; the document says an RFC 3339 date-time
    for path in ("/v1/bookings", "/v1/events"):
        r = await api.get(path, to="0.5")
        assert r.status_code == 422, (path, r.text)
        assert r.json()["errors"][0]["loc"] == ["query", "to"]
    r = await api.post("/v1/bookings", {"start_time": 1716026400, "end_time": 1716030000})
    assert r.status_code == 422


async def test_allow_names_the_most_literal_route(api: Api) -> None:
    some = "00000000-0000-0000-0000-000000000001"
    for path, allow in (
        (f"/v1/bookings/{some}/history", "GET"),  # not PUT /v1/bookings/{id}/{action}
        ("/v2/bookings/groups", "GET"),  # not DELETE /v2/bookings/{id}
        (f"/v2/bookings/{some}/reschedule", "POST"),
    ):
        r = await api.http.request("OPTIONS", path, headers=api._headers())
        assert r.status_code == 405, path
        assert r.headers["allow"] == allow, path


async def test_a_timekit_booking_id_is_a_uuid_or_no_route(api: Api) -> None:
    some = "00000000-0000-0000-0000-000000000001"
    r = await api.http.put(f"/v2/bookings/groups/{some}", headers=api._headers())
    assert r.status_code == 405  # was 422: "groups" read as a booking id
    assert r.headers["allow"] == "GET"
