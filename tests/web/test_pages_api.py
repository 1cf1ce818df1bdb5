"""`/v1/pages`: create, read, list, change and delete booking pages; slugs unique on the server."""

from __future__ import annotations

from typing import Any

from tests.web.conftest import Api


async def _page(api: Api, **fields: Any) -> dict[str, Any]:
    resource = await api.resource()
    body = {
        "slug": "dr-berg",
        "title": "Book Dr. Berg",
        "resource_ids": [resource["resource_id"]],
        "durations": ["PT30M", "PT60M"],
        **fields,
    }
    r = await api.post("/v1/pages", body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_a_page_has_exactly_the_fields_of_the_issue(api: Api) -> None:
    page = await _page(api, description="Check-ups", reminder="PT24H", locale="de")
    assert set(page) == {
        "page_id", "slug", "url", "title", "description", "resource_ids", "mode", "durations",
        "graph", "fields", "locale", "timezone", "min_cancel_notice", "min_reschedule_notice",
        "reminder", "version", "created_at", "updated_at",
    }  # fmt: skip
    assert page["url"] == "/book/dr-berg"
    assert page["durations"] == ["PT30M", "PT1H"]
    assert page["mode"] == "any"
    assert page["graph"] == "instant"
    assert page["fields"] == {"phone": "off", "notes": "off", "custom": []}
    assert page["reminder"] == "P1D"  # pydantic writes whole days as days
    assert page["min_cancel_notice"] == "PT0S"
    got = await api.get(f"/v1/pages/{page['page_id']}")
    assert got.status_code == 200
    assert got.json() == page
    assert got.headers["etag"] == '"1"'


async def test_slugs_are_unique_on_the_server(api: Api, other_api: Api) -> None:
    await _page(api)
    resource = await other_api.resource()
    r = await other_api.post(
        "/v1/pages",
        {"slug": "dr-berg", "title": "x", "resource_ids": [resource["resource_id"]],
         "durations": ["PT30M"]},
    )  # fmt: skip
    assert r.status_code == 409
    assert r.json()["code"] == "slug_taken"
    assert r.headers["content-type"] == "application/problem+json"


async def test_a_deleted_page_frees_its_slug(api: Api) -> None:
    page = await _page(api)
    r = await api.delete(f"/v1/pages/{page['page_id']}")
    assert r.status_code == 204
    assert (await api.get(f"/v1/pages/{page['page_id']}")).status_code == 404
    again = await _page(api)
    assert again["page_id"] != page["page_id"]


async def test_put_changes_the_fields_sent(api: Api) -> None:
    page = await _page(api, reminder="PT2H")
    r = await api.put(
        f"/v1/pages/{page['page_id']}",
        {"title": "New", "fields": {"phone": "required", "custom": [
            {"key": "insurer", "label": "Insurance", "required": True}]}, "reminder": None},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["title"] == "New"
    assert out["slug"] == "dr-berg"
    assert out["fields"]["phone"] == "required"
    assert out["fields"]["custom"][0]["key"] == "insurer"
    assert out["reminder"] is None
    assert out["version"] == 2
    listed = await api.get("/v1/pages")
    assert [p["page_id"] for p in listed.json()["data"]] == [page["page_id"]]


async def test_bad_pages_are_422_naming_the_field(api: Api) -> None:
    resource = await api.resource()
    good = {"slug": "ok", "title": "t", "resource_ids": [resource["resource_id"]],
            "durations": ["PT30M"]}  # fmt: skip
    cases: list[tuple[dict[str, Any], str]] = [
        ({"slug": "Not A Slug"}, "slug"),
        ({"durations": []}, "durations"),
        ({"durations": ["PT30M", "PT30M"]}, "durations"),
        ({"graph": "group_owner"}, "graph"),
        ({"mode": "some"}, "mode"),
        ({"locale": "xx_YY_ZZ"}, "locale"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"reminder": "PT0S"}, "reminder"),
        ({"fields": {"custom": [{"key": f"k{i}", "label": "l"} for i in range(6)]}}, "fields"),
        ({"fields": {"phone": "sometimes"}}, "fields"),
        ({"resource_ids": ["00000000-0000-7000-8000-000000000000"]}, "resource_ids"),
        ({"resource_ids": []}, "resource_ids"),
    ]
    for change, field in cases:
        r = await api.post("/v1/pages", {**good, **change})
        assert r.status_code == 422, (change, r.text)
        assert field in r.text, (change, r.text)


async def test_pages_need_the_secret_key(api: Api) -> None:
    public = api.as_key(api.public_key)
    assert (await public.get("/v1/pages")).status_code == 403
