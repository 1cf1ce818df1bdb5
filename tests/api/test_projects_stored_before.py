"""/v2 projects stored before their resources were checked on write (2026-12-01) may name, in
`availability.resources` and `resources`, another app's resource, an archived or a made-up one,
or no id at all (or, in `availability.resources`, no list: the project's own then). Written here
straight into the row. What is shown, searched and offered is the app's own live resources among
them, the rest ignored; a booking on one of the others is refused as any booking on it is; a
project left with none is a 422 naming `project_id`. Never a 500, never another app's resource.
Both backends."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import Api, store_as_before
from tests.api.test_safety_project_bookings import project, visit
from tests.api.test_timekit import MONDAY, resource, v2

WINDOW = {"from": f"{MONDAY}T08:00:00Z", "to": f"{MONDAY}T10:00:00Z"}


async def stored(api: Api, engine: AsyncEngine, pid: str, ids: Any, shown: Any) -> None:
    """The project's `resources` and `availability.resources` as an older version kept them."""
    settings = json.dumps({"availability": {"resources": shown}})
    await store_as_before(
        engine, api, "projects", pid, resource_ids=json.dumps(ids), settings=settings
    )


async def seen(api: Api, pid: str) -> list[tuple[list[str], list[str]]]:
    """(resources, availability.resources) as each read shows them: the owner's, the list's,
    and the widget's embed with the public key."""
    one = (await v2(api, "GET", f"/projects/{pid}")).json()["data"]
    (listed,) = (await v2(api, "GET", "/projects")).json()["data"]
    embed = await v2(api, "GET", f"/projects/embed/{pid}", key=api.public_key)
    assert embed.status_code == 200, embed.text
    widget = embed.json()["data"]
    return [
        (one["resources"], one["availability"]["resources"]),
        (listed["resources"], listed["availability"]["resources"]),
        ([], widget["availability"]["resources"]),  # the embed has no `resources` of its own
    ]


async def search(api: Api, pid: str) -> Any:
    return await v2(api, "POST", "/availability", {"project_id": pid, **WINDOW}, key=api.public_key)


async def test_the_apps_own_live_resources_are_used_and_the_rest_ignored(
    api: Api, other_api: Api, engine: AsyncEngine
) -> None:
    mine, also = (await resource(api))["id"], (await resource(api, name="Also"))["id"]
    gone = (await resource(api, name="Gone"))["id"]
    assert (await v2(api, "DELETE", f"/resources/{gone}")).status_code == 200
    theirs = (await resource(other_api, name="Theirs"))["id"]
    made_up = "00000000-0000-4000-8000-000000000001"
    pid = await project(api, "p", resources=[also], availability={"resources": [mine]})
    junk = [theirs, gone, made_up, "Dr. Who", None, 5, [mine]]
    await stored(api, engine, pid, [theirs, also, "x"], [*junk, mine, mine])
    assert await seen(api, pid) == [([also], [mine]), ([also], [mine]), ([], [mine])]
    found = await search(api, pid)
    assert found.status_code == 200, found.text
    slots = found.json()["data"]
    assert len(slots) == 5  # hours from 8:00 to 9:00 every 15 minutes, on the one shown
    assert {r["id"] for s in slots for r in s["resources"]} == {mine}
    # Booked through the project: its own live resources only; the others are refused as any
    # booking on them is (another app's is no resource of this app; an archived one takes none).
    for rid, hour in ((mine, 9), (also, 10)):
        r = await v2(api, "POST", "/bookings", visit(rid, hour, project_id=pid), key=api.public_key)
        assert r.status_code == 201, r.text
    refused = await v2(
        api, "POST", "/bookings", visit(theirs, 11, project_id=pid), key=api.public_key
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == {"resource_id": [f"no such resource: {theirs}"]}
    refused = await v2(
        api, "POST", "/bookings", visit(gone, 11, project_id=pid), key=api.public_key
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "resource_archived")
    assert (await v2(other_api, "GET", "/bookings")).json()["data"] == []
    mine_booked = (await v2(api, "GET", "/bookings")).json()["data"]
    assert sorted(b["resource"]["id"] for b in mine_booked) == sorted([mine, also])


async def test_a_project_left_with_no_resource_says_so(
    api: Api, other_api: Api, engine: AsyncEngine
) -> None:
    mine = (await resource(api))["id"]
    theirs = (await resource(other_api, name="Theirs"))["id"]
    pid = await project(api, "p", availability={"resources": [mine]})
    # Every id another app's, or no list at all, which stands for the project's own resources:
    # none here (before: shown to the widget as stored, and the search a 422 "Input should be a
    # valid list" on `resources`, which the visitor never sent).
    for shown in ([theirs], "all", {"resources": [mine]}):
        await stored(api, engine, pid, [], shown)
        assert await seen(api, pid) == [([], []), ([], []), ([], [])]
        refused = await search(api, pid)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"] == {
            "project_id": [f"project {pid} has no resources left to search"]
        }
        booked = await v2(
            api, "POST", "/bookings", visit(theirs, 9, project_id=pid), key=api.public_key
        )
        assert booked.status_code == 422, booked.text
        assert list(booked.json()["errors"]) == ["resource_id"]
    # A search that names its own resources is its own, project or not.
    r = await v2(
        api,
        "POST",
        "/availability",
        {"project_id": pid, "resources": [mine], **WINDOW},
        key=api.public_key,
    )
    assert r.status_code == 200, r.text
    # The owner's next write is checked as any other: the stored ids are not kept silently.
    r = await v2(api, "PUT", f"/projects/{pid}", {"availability": {"resources": [mine]}})
    assert r.status_code == 200, r.text
    assert await seen(api, pid) == [([], [mine]), ([], [mine]), ([], [mine])]


async def test_a_shown_value_that_is_no_list_stands_for_the_projects_own_resources(
    api: Api, engine: AsyncEngine
) -> None:
    # `availability.resources: "all"`, kept before the write check, beside a live resource of
    # the project: its public key may book that resource through the project (`offered`), so
    # the widget shows it and the search offers it. Before, the project read as having "no
    # resources left to search" (422 on project_id), and the widget was shown none.
    mine = (await resource(api))["id"]
    pid = await project(api, "p", resources=[mine])
    await stored(api, engine, pid, [mine], "all")
    assert await seen(api, pid) == [([mine], [mine]), ([mine], [mine]), ([], [mine])]
    found = await search(api, pid)
    assert found.status_code == 200, found.text
    assert {r["id"] for s in found.json()["data"] for r in s["resources"]} == {mine}
    r = await v2(api, "POST", "/bookings", visit(mine, 9, project_id=pid), key=api.public_key)
    assert r.status_code == 201, r.text


async def test_the_archive_answer_shows_the_project_as_a_read_did(
    api: Api, other_api: Api, engine: AsyncEngine
) -> None:
    """DELETE /v2/projects/:id answers the project as its last read showed it: before, it
    echoed the ids stored before the write checks, another app's resource among them."""
    mine = (await resource(api))["id"]
    gone = (await resource(api, name="Gone"))["id"]
    assert (await v2(api, "DELETE", f"/resources/{gone}")).status_code == 200
    theirs = (await resource(other_api, name="Theirs"))["id"]
    pid = await project(api, "p", resources=[mine], availability={"resources": [mine]})
    await stored(api, engine, pid, [theirs, gone, mine], [theirs, gone, mine])
    read = (await v2(api, "GET", f"/projects/{pid}")).json()["data"]
    r = await v2(api, "DELETE", f"/projects/{pid}")
    assert r.status_code == 200, r.text
    archived = r.json()["data"]
    assert (archived["resources"], archived["availability"]["resources"]) == ([mine], [mine])
    assert {k: v for k, v in archived.items() if k != "updated_at"} == {
        k: v for k, v in read.items() if k != "updated_at"
    }
    assert theirs not in r.text
    assert (await v2(api, "GET", f"/projects/{pid}")).status_code == 404
