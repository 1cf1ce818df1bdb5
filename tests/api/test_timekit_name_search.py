"""`GET /v2/bookings?search=customer.name:...` (secret key): `*` is the one wildcard
(docs/migrating-from-timekit.md); every other character matches itself. Before, `_` stayed a
LIKE wildcard (any one character): `Ann_*` found "Annie" too. Both backends (SQLite's LIKE has
no escape character unless told one)."""

from __future__ import annotations

from tests.api.conftest import Api
from tests.api.test_timekit import resource, v2


async def names_found(api: Api, pattern: str) -> list[str]:
    r = await v2(api, "GET", "/bookings", search=f"customer.name:{pattern}", include="customers")
    assert r.status_code == 200, r.text
    return sorted(c["name"] for b in r.json()["data"] for c in b["customers"])


async def test_only_the_star_is_a_wildcard_in_a_customer_name_search(api: Api) -> None:
    rid = (await resource(api))["id"]
    for hour, name in enumerate(("Ann_Lee", "Annie", "Ann Lee", "ann_lee two")):
        r = await v2(
            api,
            "POST",
            "/bookings",
            {
                "resource_id": rid,
                "graph": "instant",
                "start": f"2024-05-06T{10 + hour}:00:00+02:00",
                "end": f"2024-05-06T{10 + hour}:30:00+02:00",
                "what": "Check-up",
                "customer": {"name": name, "email": f"c{hour}@example.com"},
            },
        )
        assert r.status_code == 201, r.text
    assert await names_found(api, "Ann_*") == ["Ann_Lee", "ann_lee two"]
    assert await names_found(api, "Ann_Lee") == ["Ann_Lee"]
    assert await names_found(api, "*_*") == ["Ann_Lee", "ann_lee two"]
    assert await names_found(api, "Ann*") == ["Ann Lee", "Ann_Lee", "Annie", "ann_lee two"]
    assert await names_found(api, "A_n*") == []
