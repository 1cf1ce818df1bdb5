"""A booking made with the public (widget) key in a project's name (/v2 `project_id`, kept in
the booking's `meta.timekit.project_id`; /v1 can write that too) names a live project of the
key's app, in the project's graph, on one of its resources; a seat, in a class of the project.
Else 422 naming the field, and nothing is booked (docs/security.md, docs/migrating-from-timekit.md).
Before, any id was kept: a visitor could file a booking under another project (the owner's
`project.id:` search, the webhooks' `project`) or under an id of another app. The secret key's
bookings are the owner's own and stay unchecked. Both backends."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api
from tests.api.test_timekit import MONDAY, customer, resource, v2


async def project(api: Api, slug: str, **fields: Any) -> str:
    r = await v2(api, "POST", "/projects", {"name": slug, "slug": slug, **fields})
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["id"])


def visit(resource_id: str, hour: int, **more: Any) -> dict[str, Any]:
    """A booking as the widget sends it: its `booking` settings merged in."""
    return {
        "resource_id": resource_id,
        "graph": "instant",
        "start": f"{MONDAY}T{hour:02}:00:00+02:00",
        "end": f"{MONDAY}T{hour:02}:30:00+02:00",
        "customer": customer(hour),
        **more,
    }


def assert_422(r: Any, field: str) -> None:
    """A 422 naming `field` only: in Timekit's shape on /v2, as problem+json on /v1."""
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    if r.url.path.startswith("/v2/"):
        assert list(errors) == [field], r.text
    else:
        assert r.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in errors] == [field], r.text


async def booked(api: Api) -> list[dict[str, Any]]:
    return list((await v2(api, "GET", "/bookings")).json()["data"])


async def test_the_widget_books_in_its_own_project(api: Api) -> None:
    a, b = (await resource(api))["id"], (await resource(api, name="Other"))["id"]
    p = await project(api, "p", resources=[a], booking={"graph": "instant"})
    # Resources its widget shows through `availability.resources` are its own too.
    q = await project(api, "q", availability={"resources": [b]})
    for rid, pid, hour in ((a, p, 9), (b, q, 10)):
        r = await v2(api, "POST", "/bookings", visit(rid, hour, project_id=pid), key=api.public_key)
        assert r.status_code == 201, r.text
        assert r.json()["data"]["project"] == {"id": pid}
    found = await v2(api, "GET", "/bookings", search=f"project.id:{p}")
    assert [x["resource"]["id"] for x in found.json()["data"]] == [a]


async def test_no_other_project_and_nothing_outside_it(api: Api, other_api: Api) -> None:
    a, b = (await resource(api))["id"], (await resource(api, name="Other"))["id"]
    p = await project(api, "p", resources=[a], booking={"graph": "confirm_decline"})
    gone = await project(api, "gone", resources=[a, b])
    assert (await v2(api, "DELETE", f"/projects/{gone}")).status_code == 200
    theirs = await project(other_api, "theirs", resources=[(await resource(other_api))["id"]])
    public = api.public_key
    cases = [  # (the body, the field its 422 names)
        (visit(a, 9, project_id=theirs), "project_id"),  # another app's
        (visit(a, 9, project_id=gone), "project_id"),  # archived
        (visit(a, 9, project_id="00000000-0000-0000-0000-000000000000"), "project_id"),
        (visit(b, 9, project_id=p, graph="confirm_decline"), "resource_id"),  # not its resource
        (visit(a, 9, project_id=p), "graph"),  # the project books confirm_decline
    ]
    for body, field in cases:
        assert_422(await v2(api, "POST", "/bookings", body, key=public), field)
    assert await booked(api) == []
    # What the project offers is booked.
    r = await v2(
        api, "POST", "/bookings", visit(a, 9, project_id=p, graph="confirm_decline"), key=public
    )
    assert r.status_code == 201, r.text


async def test_a_search_in_a_project_that_is_not_one_is_answered_as_a_booking_is(
    api: Api, other_api: Api
) -> None:
    # A body naming an unknown project is a wrong value of its `project_id` (Timekit: 422 with
    # `errors.project_id`), for the search as for the booking. Before, the search answered 404
    # `not_found` where the booking answered 422, and the widget, which shows a 422's field
    # message, showed a bare "Not Found".
    a = (await resource(api))["id"]
    gone = await project(api, "gone", resources=[a])
    assert (await v2(api, "DELETE", f"/projects/{gone}")).status_code == 200
    theirs = await project(other_api, "theirs", resources=[(await resource(other_api))["id"]])
    window = {"from": f"{MONDAY}T08:00:00Z", "to": f"{MONDAY}T09:00:00Z"}
    for pid in (theirs, gone, "00000000-0000-0000-0000-000000000000"):
        for key in (api.public_key, api.secret_key):
            searched = await v2(
                api, "POST", "/availability", {"project_id": pid, **window}, key=key
            )
            made = await v2(api, "POST", "/bookings", visit(a, 9, project_id=pid), key=key)
            if key == api.secret_key:  # the owner's own bookings are labelled as it likes
                assert made.status_code == 201, made.text
                assert (
                    await v2(api, "DELETE", f"/bookings/{made.json()['data']['id']}")
                ).status_code == 200
                made = searched
            for r in (searched, made):
                assert_422(r, "project_id")
                assert r.json()["code"] == "validation_error"
                assert r.json()["errors"] == {"project_id": ["no such project"]}, r.text


async def test_v1_cannot_write_the_label_either(api: Api, other_api: Api) -> None:
    a = (await resource(api))["id"]
    theirs = await project(other_api, "theirs")
    public = api.as_key(api.public_key)
    body = {
        "resource_id": a,
        "start_time": f"{MONDAY}T10:00:00+02:00",
        "end_time": f"{MONDAY}T10:30:00+02:00",
        "customer": {"name": "Ann", "email": "ann@example.com"},
    }
    mine = await project(api, "mine", resources=[a])
    # Another app's, no id at all, and our own in another spelling than /v2's (which its search
    # and the widget would not find).
    spellings = (mine.upper(), "urn:uuid:" + mine, "{" + mine + "}", mine.replace("-", ""))
    for given in (theirs, "not an id", 7, {"id": theirs}, None, *spellings):
        r = await public.post("/v1/bookings", {**body, "meta": {"timekit": {"project_id": given}}})
        assert_422(r, "meta.timekit.project_id")
    assert await booked(api) == []
    # Other labels under `timekit` are the visitor's own words, as `details` are.
    r = await public.post("/v1/bookings", {**body, "meta": {"timekit": {"what": "A chat"}}})
    assert r.status_code == 201, r.text
    r = await public.post(
        "/v1/bookings",
        {
            **body,
            "start_time": f"{MONDAY}T11:00:00+02:00",
            "end_time": f"{MONDAY}T11:30:00+02:00",
            "meta": {"timekit": {"project_id": mine}},
        },
    )
    assert r.status_code == 201, r.text
    # A pool: every resource of it must be the project's.
    b = (await resource(api, name="Other"))["id"]
    pool = {k: v for k, v in body.items() if k != "resource_id"}
    labels = {"timekit": {"project_id": mine}}
    at = {"start_time": f"{MONDAY}T12:00:00+02:00", "end_time": f"{MONDAY}T12:30:00+02:00"}
    r = await public.post("/v1/bookings", {**pool, **at, "resource_ids": [a, b], "meta": labels})
    assert_422(r, "resource_ids")
    assert b not in {x["resource"]["id"] for x in await booked(api)}
    r = await public.post("/v1/bookings", {**pool, **at, "resource_ids": [a], "meta": labels})
    assert r.status_code == 201, r.text


async def test_the_secret_key_labels_its_bookings_as_it_likes(api: Api, other_api: Api) -> None:
    a = (await resource(api))["id"]
    theirs = await project(other_api, "theirs")
    r = await v2(api, "POST", "/bookings", visit(a, 9, project_id=theirs))
    assert r.status_code == 201, r.text
    assert r.json()["data"]["project"] == {"id": theirs}


async def test_a_seat_in_a_class_of_the_project(api: Api) -> None:
    studio, hall = (await resource(api))["id"], (await resource(api, name="Hall"))["id"]
    yoga = await project(api, "yoga", booking={"graph": "group_customer"})  # no resources
    rooms = await project(api, "rooms", resources=[hall])

    async def klass(rid: str, hour: int, **more: Any) -> str:
        r = await v2(
            api,
            "POST",
            "/bookings",
            {**visit(rid, hour, **more), "graph": "group_owner", "settings": {"max_seats": 5}},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["data"]["id"])

    labelled = await klass(studio, 16, project_id=yoga)  # the widget lists it under yoga
    plain = await klass(hall, 18)

    async def seat(owner: str, pid: str) -> Any:
        body = {
            "graph": "group_customer",
            "related": {"owner_booking_id": owner},
            "customer": customer(3),
            "project_id": pid,
        }
        return await v2(api, "POST", "/bookings", body, key=api.public_key)

    assert_422(await seat(plain, yoga), "related.owner_booking_id")  # not yoga's class
    assert_422(await seat(labelled, rooms), "related.owner_booking_id")  # nor rooms'
    assert {b["graph"] for b in await booked(api)} == {"group_owner"}  # no seat taken
    r = await seat(labelled, yoga)  # the class names the project
    assert r.status_code == 201, r.text
    assert r.json()["data"]["project"] == {"id": yoga}
    r = await seat(plain, rooms)  # the class is on a resource of the project
    assert r.status_code == 201, r.text


async def test_what_v1_writes_under_timekit_never_breaks_v2(api: Api) -> None:
    """`meta.timekit` is the adapter's, but /v1 writes a booking's meta as given: a visitor's
    `{"customer": "x"}` there made every /v2 answer and list that held the booking a 500 (and
    each timekit webhook of it fail), and `{"customer": {"id": ..., "email": ...}}` passed for
    the booking's client in /v2's `customers`."""
    a = (await resource(api))["id"]
    public = api.as_key(api.public_key)
    shapes = [
        {"customer": "x"},
        {"customer": [1, 2]},
        {"customer": {"id": "someone-else", "email": "ceo@example.com", "voip": "ok"}},
        {"what": {"a": 1}, "where": [1]},
    ]
    made = []
    for hour, labels in enumerate(shapes, start=9):
        r = await public.post(
            "/v1/bookings",
            {
                "resource_id": a,
                "start_time": f"{MONDAY}T{hour:02}:00:00+02:00",
                "end_time": f"{MONDAY}T{hour:02}:30:00+02:00",
                "customer": {"name": "Vi", "email": "vi@example.com"},
                "meta": {"timekit": labels},
            },
        )
        assert r.status_code == 201, r.text
        made.append(r.json()["booking_id"])
    listed = await v2(api, "GET", "/bookings", include="customers,attributes,event")
    assert listed.status_code == 200, listed.text
    assert len(listed.json()["data"]) == len(shapes)
    shown = []
    for bid in made:
        r = await v2(api, "GET", f"/bookings/{bid}", include="customers,attributes,event")
        assert r.status_code == 200, r.text
        shown.append(r.json()["data"])
    client_id = (await api.get(f"/v1/bookings/{made[0]}")).json()["client_id"]
    for data in shown:
        (who,) = data["customers"]
        assert (who["id"], who["name"], who["email"]) == (client_id, "Vi", "vi@example.com")
        assert (data["event"]["what"], data["event"]["where"]) == ("", "")
    assert shown[2]["customers"][0]["voip"] == "ok"  # a field the adapter keeps is still shown


async def test_the_resources_a_widget_shows_are_the_apps_own_live_ones(
    api: Api, other_api: Api
) -> None:
    # `availability.resources` is what the widget shows, what /v2/availability searches and
    # what the public key may book. Before, anything was kept: each of these made every
    # visitor's search a 422 (or offered another app's resource), and was accepted as written.
    mine, gone = (await resource(api))["id"], (await resource(api, name="Gone"))["id"]
    assert (await v2(api, "DELETE", f"/resources/{gone}")).status_code == 200
    theirs = (await resource(other_api))["id"]
    made_up = "00000000-0000-4000-8000-000000000001"
    for shown, says in (
        ([mine, theirs], f"no such resource: {theirs}"),
        ([gone], f"no such resource: {gone}"),
        ([made_up], f"no such resource: {made_up}"),
        (["Dr. Who"], "not a resource id: 'Dr. Who'"),
        ("all", "a list of resource ids"),
        ([mine] * 201, "at most 200 resources"),
    ):
        r = await v2(
            api,
            "POST",
            "/projects",
            {"name": "p", "slug": "p", "availability": {"resources": shown}},
        )
        assert_422(r, "availability.resources")
        assert (r.json()["code"], r.json()["errors"]["availability.resources"]) == (
            "validation_error",
            [says],
        )
    assert (await v2(api, "GET", "/projects")).json()["data"] == []
    p = await project(api, "p", availability={"resources": [mine]})
    r = await v2(api, "PUT", f"/projects/{p}", {"availability": {"resources": [theirs]}})
    assert_422(r, "availability.resources")
    shown = (await v2(api, "GET", f"/projects/{p}")).json()["data"]["availability"]
    assert shown["resources"] == [mine]
    # One archived later drops out of what the widget shows, as from `resources`: before, the
    # project's every search was a 422 "no such resource" from then on.
    later = (await resource(api, name="Later"))["id"]
    r = await v2(api, "PUT", f"/projects/{p}", {"availability": {"resources": [later, mine]}})
    assert r.status_code == 200, r.text
    assert (await v2(api, "DELETE", f"/resources/{later}")).status_code == 200
    for key in (api.secret_key, api.public_key):
        embed = await v2(api, "GET", f"/projects/embed/{p}", key=key)
        assert embed.json()["data"]["availability"]["resources"] == [mine]
    window = {"from": f"{MONDAY}T08:00:00Z", "to": f"{MONDAY}T09:00:00Z"}
    searched = await v2(
        api, "POST", "/availability", {"project_id": p, **window}, key=api.public_key
    )
    assert searched.status_code == 200, searched.text
