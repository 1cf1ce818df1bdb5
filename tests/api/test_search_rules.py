"""A search's rules are built once per content of a resource's rule columns
(services/search_rules.py): an edit is never answered with the rules from before it, whichever
way it reached the row; and the cache stays inside its byte budget."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.services import search_rules
from tests.api.conftest import Api, store_as_before

# 2024-05-02 is a Thursday (the test clock starts on Wednesday 2024-05-01 at 09:00 UTC).
THURSDAY = {"start": "2024-05-02T00:00:00Z", "end": "2024-05-03T00:00:00Z", "duration": "PT1H"}


async def hours_offered(api: Api, resource: dict[str, Any]) -> list[str]:
    r = await api.get("/v1/availability", resource_id=resource["resource_id"], **THURSDAY)
    assert r.status_code == 200, r.text
    return [s["start_time"][11:16] for s in r.json()["data"]]


async def test_a_search_after_an_edit_reads_the_edit(api: Api) -> None:
    resource = await api.resource(
        timezone="UTC", weekly_hours={"thu": [["09:00", "12:00"]]}, slot_step="PT1H"
    )
    rules = f"/v1/resources/{resource['resource_id']}/availability"
    assert await hours_offered(api, resource) == ["09:00", "10:00", "11:00"]
    assert await hours_offered(api, resource) == ["09:00", "10:00", "11:00"]  # from the cache

    edited = await api.put(rules, {"weekly_hours": {"thu": [["14:00", "16:00"]]}})
    assert edited.status_code == 200, edited.text
    assert await hours_offered(api, resource) == ["14:00", "15:00"]

    edited = await api.put(rules, {"exceptions": [{"date": "2024-05-02", "hours": []}]})
    assert edited.status_code == 200, edited.text
    assert await hours_offered(api, resource) == []

    edited = await api.put(rules, {"exceptions": [], "slot_step": "PT30M"})
    assert edited.status_code == 200, edited.text
    assert await hours_offered(api, resource) == ["14:00", "14:30", "15:00"]

    # Back to the first rules: the same content, the same answer as at first.
    edited = await api.put(
        rules, {"weekly_hours": {"thu": [["09:00", "12:00"]]}, "slot_step": "PT1H"}
    )
    assert edited.status_code == 200, edited.text
    assert await hours_offered(api, resource) == ["09:00", "10:00", "11:00"]


async def test_an_edit_this_process_never_saw_is_read_too(api: Api, engine: AsyncEngine) -> None:
    """Another process's edit, or one by hand in SQL that leaves `version` as it was: the row's
    content is the key, so the next search reads it."""
    resource = await api.resource(
        timezone="UTC", weekly_hours={"thu": [["09:00", "12:00"]]}, slot_step="PT1H"
    )
    assert await hours_offered(api, resource) == ["09:00", "10:00", "11:00"]

    weekly = {"thu": [["13:00", "15:00"]]}
    await store_as_before(
        engine, api, "resources", resource["resource_id"], weekly_hours=json.dumps(weekly)
    )
    assert await hours_offered(api, resource) == ["13:00", "14:00"]

    await store_as_before(engine, api, "resources", resource["resource_id"], slot_step=1800)
    assert await hours_offered(api, resource) == ["13:00", "13:30", "14:00"]
    assert (await api.get(f"/v1/resources/{resource['resource_id']}")).json()["version"] == 1


def _deep_size(value: object, seen: set[int] | None = None) -> int:
    """Bytes of `value` and everything it holds, each object once (shared ones, like the
    interned "09:00" or a cached ZoneInfo, are counted as if the entry held its own)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in value.items())
    elif isinstance(value, list | tuple | set | frozenset):
        size += sum(_deep_size(v, seen) for v in value)
    elif hasattr(value, "__dataclass_fields__"):
        size += sum(_deep_size(getattr(value, f), seen) for f in value.__dataclass_fields__)
    return size


def _key(weekly: dict[str, list[list[str]]] | None, exceptions: list[dict[str, Any]]) -> Any:
    zero = timedelta(0)
    return (  # the rule columns as the models hold them, the JSON ones as text
        "Europe/Oslo",
        None if weekly is None else json.dumps(weekly),
        json.dumps(exceptions),
        zero,
        zero,
        None,
        None,
        None,
        None,
        timedelta(minutes=15),
    )


def _keys() -> Iterator[Any]:
    """Rule columns as large as the API lets them be, and small ones."""
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    yield _key(None, [])
    yield _key({d: [["09:00", "17:00"]] for d in days[:5]}, [])
    many = [[f"{h:02d}:00", f"{h:02d}:30"] for h in range(24)]
    yield _key({d: many for d in days}, [])
    dates = [{"date": f"2024-{m:02d}-{d:02d}", "hours": many[:4]} for m in (1, 2) for d in (1, 9)]
    yield _key(None, dates)


def test_an_entry_costs_no_more_than_the_budget_counts() -> None:
    for key in _keys():
        built = search_rules._build(key)
        real = _deep_size(key) + _deep_size(built)
        assert real <= search_rules.entry_bytes(key), (real, search_rules.entry_bytes(key))


def test_the_cache_stays_within_its_bytes() -> None:
    cache = search_rules._Cache(budget=40_000)
    made = []
    for i in range(200):  # each a distinct content: a different exception date
        on = date(2024, 6, 1) + timedelta(days=i)
        key = _key(None, [{"date": on.isoformat(), "hours": [["10:00", "24:00"]]}])
        made.append(key)
        cache.get(key)
        assert cache.used == sum(size for _, size in cache.entries.values()) <= 40_000
    assert 0 < len(cache.entries) < 200
    assert made[-1] in cache.entries
    assert made[0] not in cache.entries  # the least recently used went first
    huge = _key(None, [{"date": f"2025-01-{d:02d}", "hours": []} for d in range(1, 29)] * 8)
    assert search_rules.entry_bytes(huge) * 8 > 40_000
    assert cache.get(huge).own.timezone == "Europe/Oslo"  # built, answered, not kept
    assert huge not in cache.entries
