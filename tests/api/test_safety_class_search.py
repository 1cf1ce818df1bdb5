"""The public (widget) key lists open classes (`GET /v2/bookings/groups`) without their customers
and without their meta (docs/security.md); its `search` may only use what it is shown of them.
Before, `customer.name:Se*` spelt out a class's customer a letter at a time, and
`customer.email:` and `meta.<key>:` confirmed guesses of its hidden fields (1 class or 0).
Both backends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.api.conftest import Api
from tests.api.test_timekit import MONDAY, resource, v2


async def _class(api: Api) -> tuple[str, str]:
    rid = (await resource(api))["id"]
    r = await v2(api, "POST", "/projects", {"name": "Yoga", "slug": "yoga", "resources": [rid]})
    assert r.status_code == 201, r.text
    pid = r.json()["data"]["id"]
    r = await v2(
        api,
        "POST",
        "/bookings",
        {
            "resource_id": rid,
            "graph": "group_owner",
            "start": f"{MONDAY}T16:00:00+02:00",
            "end": f"{MONDAY}T17:00:00+02:00",
            "what": "Yoga",
            "meta": {"teacher_phone": "555-0101"},
            "settings": {"max_seats": 3},
            "customer": {"name": "Secret Teacher", "email": "teacher@private.example"},
            "project_id": pid,
        },
    )
    assert r.status_code == 201, r.text
    return rid, pid


async def groups(api: Api, search: str, key: str) -> Any:
    return await v2(api, "GET", "/bookings/groups", key=key, search=search)


async def test_the_public_key_cannot_search_classes_by_what_it_is_not_shown(api: Api) -> None:
    await _class(api)
    for search in (
        "customer.name:Secret*",
        "customer.name:Nobody*",
        "customer.email:teacher@private.example",
        "meta.teacher_phone:555-0101",
        "meta.timekit.customer.email:x",
        "state:confirmed;customer.name:S*",
    ):
        r = await groups(api, search, api.public_key)
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "forbidden"
        assert "Secret" not in r.text
        assert "555" not in r.text
        # The secret key searches by them as before.
        assert (await groups(api, search, api.secret_key)).status_code == 200


async def test_the_public_key_searches_classes_by_what_it_sees(api: Api) -> None:
    rid, pid = await _class(api)
    for search in (
        f"project.id:{pid}",  # the widget's own search
        f"meta.timekit.project_id:{pid}",
        f"resource.id:{rid}",
        "graph:group_owner;state:confirmed;completed:false",
    ):
        r = await groups(api, search, api.public_key)
        assert r.status_code == 200, r.text
        (shown,) = r.json()["data"]
        assert shown["meta"] == {}
        assert "customers" not in shown


async def test_the_public_key_is_shown_one_class_as_the_list_shows_it(api: Api) -> None:
    """The single-class route follows the list's rule (a class that takes bookings: confirmed,
    not started): before, it showed a class that had started, which the list hid. And its 404
    is one answer for any id it does not show: before, an id of the app that was no class said
    "No group booking" and an unknown one "No booking", telling which ids exist."""
    await _class(api)
    (listed,) = (await groups(api, "", api.public_key)).json()["data"]
    one = await v2(api, "GET", f"/bookings/groups/{listed['id']}", key=api.public_key)
    assert one.status_code == 200, one.text
    assert one.json()["data"]["id"] == listed["id"]
    plain = await api.book(
        resource_id=(await api.resource())["resource_id"],
        start_time="2024-05-20T10:00:00Z",
        end_time="2024-05-20T11:00:00Z",
        customer={"name": "Ann", "email": "ann@example.com"},
    )
    not_a_class = plain["booking_id"]
    unknown = "0190b0a0-0000-7000-8000-000000000000"
    answers = [
        await v2(api, "GET", f"/bookings/groups/{i}", key=api.public_key)
        for i in (not_a_class, unknown)
    ]
    assert [a.status_code for a in answers] == [404, 404], [a.text for a in answers]
    said = [a.text.replace(i, "ID") for a, i in zip(answers, (not_a_class, unknown), strict=True)]
    assert said[0] == said[1], said
    api.clock.advance(timedelta(days=5, hours=15))  # the class (Monday 16:00 +02:00) started
    assert (await groups(api, "", api.public_key)).json()["data"] == []
    late = await v2(api, "GET", f"/bookings/groups/{listed['id']}", key=api.public_key)
    assert late.status_code == 404, late.text
    assert late.text.replace(listed["id"], "ID") == said[1], late.text
    # The secret key still reads it (its list has every class too).
    mine = await v2(api, "GET", f"/bookings/groups/{listed['id']}")
    assert mine.status_code == 200, mine.text
