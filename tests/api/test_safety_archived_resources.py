"""An archived resource is withdrawn: the public (browser) key never sees it (docs/security.md,
"What each key may do"). Listing with `include_archived=true` is the secret key's (403 for the
public key, not silently left out), and an archived resource's id answers the public key 404, on
/v1 and /v2 alike, as an id that never was. The secret key sees it as before."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.services import projects
from tests.api.conftest import Api
from tests.api.test_fanout_many_targets import TARGETS, few_variables
from tests.api.test_timekit import v2


def assert_problem(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code


async def _one_live_one_archived(api: Api) -> tuple[str, str]:
    live = (await api.resource(name="Dr. Live"))["resource_id"]
    gone = (await api.resource(name="Dr. Gone"))["resource_id"]
    r = await api.delete(f"/v1/resources/{gone}")
    assert r.status_code == 200, r.text
    assert r.json()["archived"] is True
    return live, gone


async def test_the_public_key_may_not_list_archived_resources(api: Api) -> None:
    live, gone = await _one_live_one_archived(api)
    public = api.as_key(api.public_key)

    r = await public.get("/v1/resources", include_archived="true")
    assert_problem(r, 403, "forbidden")
    assert "include_archived" in r.json()["detail"]
    assert "Dr. Gone" not in r.text

    # Without it, the live one only, as before.
    r = await public.get("/v1/resources")
    assert r.status_code == 200, r.text
    assert [x["resource_id"] for x in r.json()["data"]] == [live]
    r = await public.get("/v1/resources", include_archived="false")
    assert [x["resource_id"] for x in r.json()["data"]] == [live]

    # The secret key lists both.
    r = await api.get("/v1/resources", include_archived="true")
    assert r.status_code == 200, r.text
    assert {x["resource_id"] for x in r.json()["data"]} == {live, gone}


async def test_an_archived_resource_is_not_found_by_the_public_key(api: Api) -> None:
    live, gone = await _one_live_one_archived(api)
    public = api.as_key(api.public_key)
    unknown = "00000000-0000-0000-0000-000000000000"

    for path in (f"/v1/resources/{gone}", f"/v1/resources/{gone}/availability"):
        r = await public.get(path)
        assert_problem(r, 404, "not_found")
        assert "Dr. Gone" not in r.text
        # Exactly as an id that never was (the detail names the id asked for).
        never = await public.get(path.replace(gone, unknown))
        assert never.status_code == 404
        assert r.json()["detail"].replace(gone, unknown) == never.json()["detail"]
    r = await v2(api, "GET", f"/resources/{gone}", key=api.public_key)
    assert r.status_code == 404, r.text
    assert "Dr. Gone" not in r.text

    # The live one is still there for it; the archived one for the secret key.
    assert (await public.get(f"/v1/resources/{live}")).status_code == 200
    assert (await v2(api, "GET", f"/resources/{live}", key=api.public_key)).status_code == 200
    mine = await api.get(f"/v1/resources/{gone}")
    assert mine.status_code == 200, mine.text
    assert mine.json()["archived"] is True
    assert (await api.get(f"/v1/resources/{gone}/availability")).status_code == 200
    assert (await v2(api, "GET", f"/resources/{gone}")).status_code == 200


async def test_an_archived_resource_drops_out_of_its_projects(api: Api) -> None:
    """A /v2 project named it: its widget's availability then named it too, and every visitor's
    search of the project was a 422 "no such resource" from the moment it was archived."""
    live = (await api.resource(name="Dr. Live"))["resource_id"]
    gone = (await api.resource(name="Dr. Gone"))["resource_id"]
    r = await v2(api, "POST", "/projects", {"name": "P", "slug": "p", "resources": [live, gone]})
    assert r.status_code == 201, r.text
    pid = r.json()["data"]["id"]
    assert (await api.delete(f"/v1/resources/{gone}")).status_code == 200

    embed = await v2(api, "GET", f"/projects/embed/{pid}", key=api.public_key)
    assert embed.status_code == 200, embed.text
    assert embed.json()["data"]["availability"]["resources"] == [live]
    found = await v2(
        api,
        "POST",
        "/availability",
        {"project_id": pid, "from": "2024-05-06T08:00:00Z", "to": "2024-05-06T12:00:00Z"},
        key=api.public_key,
    )
    assert found.status_code == 200, found.text
    named = {x["id"] for slot in found.json()["data"] for x in slot["resources"]}
    assert named == {live}
    for path in (f"/projects/{pid}", "/projects"):
        shown = (await v2(api, "GET", path)).json()["data"]
        assert (shown[0] if isinstance(shown, list) else shown)["resources"] == [live]


async def test_a_page_of_projects_names_more_resources_than_a_statement_has_variables(
    api: Api, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which of a page's resources are live is asked in batches: a page of 200 projects names up
    to 40,000 resources, past SQLite's 32,766 variables a statement. Here the connection takes 32
    and the batch is 16; 40 resources over 4 projects, one archived, all shown but it."""
    monkeypatch.setattr(projects, "LIVE_BATCH", 16)
    ids = [(await api.resource(name=f"R{i}"))["resource_id"] for i in range(TARGETS)]
    for n in range(4):
        part = ids[n * 10 : (n + 1) * 10]
        r = await v2(
            api, "POST", "/projects", {"name": f"P{n}", "slug": f"p{n}", "resources": part}
        )
        assert r.status_code == 201, r.text
    assert (await api.delete(f"/v1/resources/{ids[25]}")).status_code == 200
    async with few_variables(engine):
        r = await v2(api, "GET", "/projects", limit="200")
    assert r.status_code == 200, r.text
    shown = [rid for p in r.json()["data"] for rid in p["resources"]]
    assert shown == ids[:25] + ids[26:]
