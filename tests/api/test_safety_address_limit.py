"""One client address is limited across every app's public key, customer tokens and pages.

Expectations from docs/security.md ("Rate limits") and ADR 0021: besides each public key's own
limit per address, an address may make at most SLOTGRAPH_ADDRESS_RATE_LIMIT requests a minute
with public keys, customer tokens and booking pages together (an app whose own public limit is
higher: its own), so the public keys of many apps, which are in their pages for anyone to
collect, do not multiply one address's limit. Past it: 429 rate_limited with Retry-After and
RateLimit-*. (Each key is given a limit below the address's here: an address is judged by
the higher of the two.) The secret key is not counted there; another address is another count;
a request its own key refuses takes nothing from the address's count. With Redis the count is
shared.

The sliding window may let one extra request through when a minute turns over during a test
(the previous minute's count is weighted by what of it is left), so each test allows for one.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.api.app import create_app
from slotgraph.appsettings import AppSettings
from slotgraph.db.engine import session_factory
from slotgraph.services import apps
from slotgraph.settings import Settings
from tests.api.conftest import TEST_SETTINGS, Clock
from tests.api.test_safety_bad_keys import Net, bearer
from tests.api.test_safety_limits import SHARED_TIMEOUT, redis_url
from tests.conftest import clean

ADDRESS_LIMIT = 4
KEY_LIMIT = 3  # each app's public key (and customer tokens), per address
ATTACKER = "198.51.100.9"
ELSEWHERE = "198.51.100.77"


async def tenants(
    engine: AsyncEngine, n: int, public_per_minute: int = KEY_LIMIT
) -> list[apps.CreatedApp]:
    """`n` apps whose public keys may make `public_per_minute` requests a minute each."""
    limits = AppSettings.model_validate({"rate_limits": {"public_per_minute": public_per_minute}})
    made = []
    async with session_factory(engine)() as session:
        for i in range(n):
            made.append(await apps.create_tenant(session, name=f"shop {i}", now=Clock().now))
            await apps.update_settings(
                session, app_id=made[-1].app_id, data=limits, max_rate_limit=60_000
            )
    return made


@pytest.fixture
async def setup(engine: AsyncEngine) -> AsyncIterator[tuple[Net, list[apps.CreatedApp]]]:
    await clean(engine)
    made = await tenants(engine, 3)
    settings = TEST_SETTINGS.model_copy(update={"address_rate_limit": ADDRESS_LIMIT})
    net = Net(create_app(settings, engine=engine, clock=Clock()))
    yield net, made
    await net.close()


def assert_address_429(r: httpx.Response, limit: int = ADDRESS_LIMIT) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "rate_limited"
    assert "from this address" in r.json()["detail"]
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["ratelimit-limit"] == str(limit)
    assert r.headers["ratelimit-remaining"] == "0"


async def test_many_apps_public_keys_share_one_count_per_address(
    setup: tuple[Net, list[apps.CreatedApp]],
) -> None:
    net, made = setup
    one = net.at(ATTACKER)
    answers = [
        await one.get("/v1/resources", headers=bearer(made[i % 3].public_key))
        for i in range(ADDRESS_LIMIT + 2)
    ]
    assert [r.status_code for r in answers[:ADDRESS_LIMIT]] == [200] * ADDRESS_LIMIT
    # Each key has used at most 2 of its 600: only the address's count can refuse these.
    assert_address_429(answers[ADDRESS_LIMIT + 1])
    fresh = await one.get("/v1/resources", headers=bearer(made[2].public_key))
    assert_address_429(fresh)
    # The /v2 adapter counts there too, in Timekit's shape.
    r = await one.post("/v2/availability", json={}, headers=bearer(made[0].public_key))
    assert r.status_code == 429
    assert "retry-after" in r.headers
    # Another address is another visitor; the secret key is not counted per address.
    assert (
        await net.at(ELSEWHERE).get("/v1/resources", headers=bearer(made[0].public_key))
    ).status_code == 200
    assert (await one.get("/v1/resources", headers=bearer(made[0].secret_key))).status_code == 200


async def test_customer_tokens_and_pages_count_with_the_keys(
    setup: tuple[Net, list[apps.CreatedApp]],
) -> None:
    net, made = setup
    owner = net.at(ELSEWHERE)
    secret = bearer(made[0].secret_key)
    r = await owner.post(
        "/v1/resources", json={"name": "Dr. Berg", "timezone": "UTC"}, headers=secret
    )
    resource = r.json()["resource_id"]
    r = await owner.post(
        "/v1/pages",
        json={"slug": "berg", "title": "Berg", "resource_ids": [resource], "durations": ["PT30M"]},
        headers=secret,
    )
    assert r.status_code == 201, r.text
    r = await owner.post(
        "/v1/bookings",
        json={
            "resource_id": resource,
            "start_time": "2024-05-20T10:00:00Z",
            "end_time": "2024-05-20T11:00:00Z",
            "customer": {"name": "Ann", "email": "ann@example.com"},
        },
        headers=secret,
    )
    assert r.status_code == 201, r.text
    booking, token = r.json()["booking_id"], r.json()["customer_token"]
    one = net.at(ATTACKER)
    answers = [
        await one.get("/book/berg"),
        await one.get("/book/berg"),
        await one.get(f"/v1/bookings/{booking}", headers=bearer(token)),
        await one.get("/v1/resources", headers=bearer(made[1].public_key)),
    ]
    assert [r.status_code for r in answers] == [200] * ADDRESS_LIMIT, answers[-1].text
    # Uncounted, the pages would leave two of the address's four (one at a minute's turn).
    await one.get("/v1/resources", headers=bearer(made[2].public_key))
    assert_address_429(await one.get("/v1/resources", headers=bearer(made[2].public_key)))
    assert_address_429(await one.get(f"/v1/bookings/{booking}", headers=bearer(token)))


async def test_one_keys_flood_takes_no_more_than_its_own_limit_from_the_address(
    engine: AsyncEngine,
) -> None:
    """A key's own limit still holds per address, and the requests it refuses are not charged
    to the address: the other apps' visitors behind it keep what the address's limit leaves
    (charged, the flood's 20 requests left them nothing)."""
    await clean(engine)
    flooded, other = await tenants(engine, 2, public_per_minute=8)
    settings = TEST_SETTINGS.model_copy(update={"address_rate_limit": 8})
    net = Net(create_app(settings, engine=engine, clock=Clock()))
    try:
        r = await net.at(ELSEWHERE).put(
            "/v1/app",
            json={"rate_limits": {"public_per_minute": 2}},
            headers=bearer(flooded.secret_key),
        )
        assert r.status_code == 200, r.text
        one = net.at(ATTACKER)
        flood = [
            await one.get("/v1/resources", headers=bearer(flooded.public_key)) for _ in range(20)
        ]
        codes = [r.status_code for r in flood]
        assert codes[:2] == [200, 200], codes
        assert codes.count(200) <= 3, codes
        assert flood[-1].status_code == 429
        assert flood[-1].headers["ratelimit-limit"] == "2"  # the key's own limit refused these
        assert "with this key from this address" in flood[-1].json()["detail"]
        rest = [await one.get("/v1/resources", headers=bearer(other.public_key)) for _ in range(8)]
        served = [r.status_code for r in rest].count(200)
        assert 8 - codes.count(200) <= served <= 8 - codes.count(200) + 1, rest[-1].text
        assert_address_429(rest[-1], limit=8)
    finally:
        await net.close()


async def test_an_app_with_a_higher_limit_keeps_it_at_the_address(
    setup: tuple[Net, list[apps.CreatedApp]],
) -> None:
    net, made = setup
    busy, other = made[0], made[1]
    r = await net.at(ELSEWHERE).put(
        "/v1/app",
        json={"rate_limits": {"public_per_minute": ADDRESS_LIMIT + 3}},
        headers=bearer(busy.secret_key),
    )
    assert r.status_code == 200, r.text
    one = net.at(ATTACKER)
    answers = [
        await one.get("/v1/resources", headers=bearer(busy.public_key))
        for _ in range(ADDRESS_LIMIT + 3)
    ]
    assert [r.status_code for r in answers] == [200] * (ADDRESS_LIMIT + 3)
    # The address has used more than the server's limit: the other apps' keys wait.
    assert_address_429(await one.get("/v1/resources", headers=bearer(other.public_key)))


async def test_zero_turns_the_address_count_off(engine: AsyncEngine) -> None:
    await clean(engine)
    made = await tenants(engine, 3)
    settings = TEST_SETTINGS.model_copy(update={"address_rate_limit": 0})
    net = Net(create_app(settings, engine=engine, clock=Clock()))
    try:
        one = net.at(ATTACKER)
        answers = [
            await one.get("/v1/resources", headers=bearer(made[i % 3].public_key))
            for i in range(3 * KEY_LIMIT)
        ]
        assert {r.status_code for r in answers} == {200}
    finally:
        await net.close()


async def test_redis_shares_the_address_count(engine: AsyncEngine) -> None:
    url = redis_url()
    await clean(engine)
    made = await tenants(engine, 3)
    settings = Settings(
        run_worker=False,
        redis_url=url,
        redis_timeout_seconds=SHARED_TIMEOUT,
        address_rate_limit=ADDRESS_LIMIT,
    )
    first = Net(create_app(settings, engine=engine, clock=Clock()))
    second = Net(create_app(settings, engine=engine, clock=Clock()))
    # Redis outlives the test: an address of this run only, so no earlier count is met.
    ip = f"203.0.113.{random.randrange(1, 255)}"
    ip6 = f"2001:db8:{random.randrange(1, 0xFFFF):x}::1"
    try:
        for address in (ip, ip6):
            answers = [
                await net.at(address).get("/v1/resources", headers=bearer(made[i % 3].public_key))
                for i, net in enumerate([first, second] * (ADDRESS_LIMIT // 2 + 1))
            ]
            assert [r.status_code for r in answers[:ADDRESS_LIMIT]] == [200] * ADDRESS_LIMIT
            assert_address_429(answers[-1])
    finally:
        await first.close()
        await second.close()
