"""What one app's secret key may pile up, where the work of every app grows with it: its
webhooks. Both backends."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import Api, store_as_before


async def test_an_app_has_at_most_50_webhooks(api: Api, other_api: Api) -> None:
    # Before: no bound; 1,000 endpoints made each fan-out of 100 events 100,100 deliveries in
    # one transaction (3.9 s of CPU and 200 MB in the worker, SQLite's write lock held 11 s).
    made = []
    for i in range(50):
        r = await api.post("/v1/webhooks", {"url": f"https://hooks.example.com/{i}"})
        assert r.status_code == 201, r.text
        made.append(r.json()["webhook_id"])
    refused = await api.post("/v1/webhooks", {"url": "https://hooks.example.com/50"})
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "limit_reached"
    assert refused.json()["detail"] == (
        "This app has 50 webhooks and may have at most 50; delete one first "
        "(one endpoint can take every event, or a list of them)."
    )
    assert len((await api.get("/v1/webhooks")).json()["data"]) == 50
    # another app's count is its own; a deleted webhook makes room
    r = await other_api.post("/v1/webhooks", {"url": "https://hooks.example.com/other"})
    assert r.status_code == 201
    assert (await api.delete(f"/v1/webhooks/{made[0]}")).status_code == 204
    again = await api.post("/v1/webhooks", {"url": "https://hooks.example.com/50"})
    assert again.status_code == 201, again.text


async def test_an_app_over_the_cap_from_before_is_told_how_many_to_delete(
    api: Api, engine: AsyncEngine
) -> None:
    # Before the cap an app could hold any number; one with 60 was told "delete one first",
    # and after deleting one it was refused again.
    made = []
    for i in range(50):
        r = await api.post("/v1/webhooks", {"url": f"https://hooks.example.com/{i}"})
        assert r.status_code == 201, r.text
        made.append(r.json()["webhook_id"])
    for webhook_id in made[:10]:
        assert (await api.delete(f"/v1/webhooks/{webhook_id}")).status_code == 204
    for i in range(50, 60):
        r = await api.post("/v1/webhooks", {"url": f"https://hooks.example.com/{i}"})
        assert r.status_code == 201, r.text
    for webhook_id in made[:10]:  # as an older version let them stay: 60 in all
        await store_as_before(engine, api, "webhook_endpoints", webhook_id, deleted_at=None)
    assert len((await api.get("/v1/webhooks")).json()["data"]) == 60
    refused = await api.post("/v1/webhooks", {"url": "https://hooks.example.com/60"})
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "limit_reached"
    assert refused.json()["detail"] == (
        "This app has 60 webhooks and may have at most 50; delete 11 first "
        "(one endpoint can take every event, or a list of them)."
    )


async def test_a_history_answer_holds_the_latest_1000_changes_and_reads_older_ones_by_next(
    api: Api,
) -> None:
    # Before: every change, however many (2,000 changes: 368 KB in one answer).
    res, client = await api.resource(), await api.client()
    booking = await api.book(
        resource_id=res["resource_id"],
        client_id=client["client_id"],
        start_time="2024-06-03T10:00:00Z",
        end_time="2024-06-03T11:00:00Z",
    )
    path = f"/v1/bookings/{booking['booking_id']}"
    for i in range(999):  # with the create: 1,000 changes, all in the answer
        r = await api.put(path, {"details": f"change {i}"})
        assert r.status_code == 200, r.text
    whole = (await api.get(f"{path}/history")).json()
    assert len(whole["data"]) == 1000
    assert whole["data"][0]["from"] is None  # the create
    assert whole["older_left_out"] is False
    r = await api.put(path, {"details": "change 999"})  # 1,001 changes
    assert r.status_code == 200, r.text
    # Before: the answer was cut with no marker; a client could not tell the create was gone.
    cut = (await api.get(f"{path}/history")).json()
    assert len(cut["data"]) == 1000
    assert cut["data"][0]["from"] is not None  # the create left out
    assert cut["data"][:999] == whole["data"][1:]  # the rest moved up by one
    assert cut["older_left_out"] is True
    assert [h["at"] for h in cut["data"]] == sorted(h["at"] for h in cut["data"])
    assert (await api.get(path)).json()["details"] == "change 999"
    # Before: the changes left out could not be read at all. `next` reads the ones before the
    # oldest shown (all 1,001 share one clock reading here: the order is the order made).
    assert whole["next"] is None
    assert cut["next"] == f"{path}/history?before={cut['data'][0]['change_id']}"
    next_path, _, before = cut["next"].partition("?before=")
    older = (await api.get(next_path, before=before)).json()
    assert older["data"] == whole["data"][:1]  # the create
    assert (older["older_left_out"], older["next"]) == (False, None)
    every = older["data"] + cut["data"]
    assert len({h["change_id"] for h in every}) == 1001
    assert [h["to"] for h in every[:2]] == ["confirmed", "confirmed"]
    middle = (await api.get(f"{path}/history", before=cut["data"][500]["change_id"])).json()
    assert middle["data"] == every[:501]
    assert (middle["older_left_out"], middle["next"]) == (False, None)
    # A change of another booking, or none, is no place in this history: 422 naming `before`.
    other = await api.book(
        resource_id=res["resource_id"],
        client_id=client["client_id"],
        start_time="2024-06-04T10:00:00Z",
        end_time="2024-06-04T11:00:00Z",
    )
    theirs = (await api.get(f"/v1/bookings/{other['booking_id']}/history")).json()["data"][0]
    for before in (theirs["change_id"], "00000000-0000-0000-0000-000000000000"):
        refused = await api.get(f"{path}/history", before=before)
        assert refused.status_code == 422, refused.text
        assert [e["loc"] for e in refused.json()["errors"]] == [["query", "before"]]
