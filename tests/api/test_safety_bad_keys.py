"""Unknown keys are rate limited per client address, before they are looked up.

Expectations from docs/security.md ("Unknown keys"): an address may present at most
SLOTGRAPH_BAD_KEY_LIMIT unknown keys (or malformed credentials) a minute; past that, a key is
answered 429 rate_limited with Retry-After without a database query, unless it was valid in the
last day, so a client behind the same address as an attacker keeps working. With Redis the count
and the "was valid" marks are shared by every process.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.api.app import create_app
from slotgraph.services import apps
from slotgraph.settings import Settings
from tests.api.conftest import TEST_SETTINGS, Clock, make_api
from tests.api.test_safety_limits import SHARED_TIMEOUT, redis_url
from tests.conftest import clean

LIMIT = 3
ATTACKER = "198.51.100.9"
NEIGHBOUR = ATTACKER  # a legitimate client behind the same NAT
ELSEWHERE = "198.51.100.77"
SETTINGS = TEST_SETTINGS.model_copy(update={"bad_key_limit": LIMIT})


def basic(password: str, user: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# Made-up credentials of every shape an attacker might try (header values as bytes: the
# non-ASCII ones go over the wire as UTF-8).
BAD: list[bytes] = [
    b"Bearer sk_" + b"0" * 43,
    b"Bearer pk_made_up",
    b"Bearer ct_" + b"A" * 43,
    b"Bearer " + b"x" * 60_000,  # huge
    "Bearer pk_\u00fc\u00df\u4e2d".encode(),  # non-ASCII
    b"Bearer",  # empty
    b"Bearer    ",
    b"Token sk_whatever",  # another scheme
    b"sk_without_a_scheme",
    basic("sk_guess").encode(),  # HTTP Basic, as Timekit's SDK sends the key
    basic("sk_guess", user="someone").encode(),
    b"Basic !!!not-base64!!!",
]


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements the app sends while the block runs (a real count, not a mock)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        sent.append(sql)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


class Net:
    """The app reached from several client addresses."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.clients: dict[str, httpx.AsyncClient] = {}

    def at(self, ip: str) -> httpx.AsyncClient:
        if ip not in self.clients:
            self.clients[ip] = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app, client=(ip, 40000)),
                base_url="http://test",
            )
        return self.clients[ip]

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        await self.app.state.limiter.close()


@pytest.fixture
async def net(engine: AsyncEngine) -> AsyncIterator[tuple[Net, apps.CreatedApp]]:
    await clean(engine)
    http, created = await make_api(engine, Clock(), SETTINGS)
    await http.aclose()
    net = Net(http._transport.app)  # type: ignore[attr-defined]
    yield net, created
    await net.close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_bad_key_429(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.json()["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["ratelimit-limit"] == str(LIMIT)
    assert r.headers["ratelimit-remaining"] == "0"


async def test_unknown_keys_past_the_limit_are_refused_before_the_lookup(
    net: tuple[Net, apps.CreatedApp], engine: AsyncEngine
) -> None:
    n, created = net
    attacker = n.at(ATTACKER)
    first = [
        await attacker.get("/v1/resources", headers=bearer(f"sk_guess{i}")) for i in range(LIMIT)
    ]
    assert [r.status_code for r in first] == [401] * LIMIT
    assert {r.json()["code"] for r in first} == {"unauthenticated"}
    with statements(engine) as sent:
        # The sliding window may let one more through if the minute turns now: two tries.
        later = [await attacker.get("/v1/resources", headers=bearer(f"sk_more{i}")) for i in (1, 2)]
        refused = [r for r in later if r.status_code == 429]
        assert refused, [r.status_code for r in later]
        assert_bad_key_429(refused[-1])
    assert len(sent) <= len(later) - len(refused)  # no query for a refused one
    with statements(engine) as sent:
        for _ in range(20):
            assert_bad_key_429(await attacker.get("/v1/resources", headers=bearer("sk_x")))
    assert sent == []
    # Another address is not affected; nor is a request without any key (401, not counted).
    assert (
        await n.at(ELSEWHERE).get("/v1/resources", headers=bearer(created.secret_key))
    ).status_code == 200
    assert (await attacker.get("/v1/resources")).status_code == 401


@pytest.mark.parametrize("credential", BAD, ids=range(len(BAD)))
async def test_every_shape_of_bad_credential_counts(
    net: tuple[Net, apps.CreatedApp], credential: bytes
) -> None:
    n, _ = net
    attacker = n.at(ATTACKER)
    headers = {"Authorization": credential}
    answers = [await attacker.get("/v1/resources", headers=headers) for _ in range(LIMIT + 2)]
    assert [r.status_code for r in answers[:LIMIT]] == [401] * LIMIT, answers[0].text
    assert 429 in [r.status_code for r in answers[LIMIT:]]
    assert_bad_key_429(answers[-1])
    # /v2 (Timekit's adapter, HTTP Basic) shares the count, and answers in its own shape.
    r = await attacker.get("/v2/resources", headers={"Authorization": basic("sk_guess2")})
    assert r.status_code == 429
    assert "retry-after" in r.headers


async def test_a_known_key_behind_the_same_address_keeps_working(
    net: tuple[Net, apps.CreatedApp], engine: AsyncEngine
) -> None:
    n, created = net
    neighbour, attacker = n.at(NEIGHBOUR), n.at(ATTACKER)
    # The legitimate client has used its key (today); then the attacker floods.
    assert (
        await neighbour.get("/v1/resources", headers=bearer(created.secret_key))
    ).status_code == 200
    for i in range(LIMIT + 2):
        await attacker.get("/v1/resources", headers=bearer(f"sk_flood{i}"))
    assert_bad_key_429(await attacker.get("/v1/resources", headers=bearer("sk_flood")))
    n.app.state.key_cache.clear()  # as after the 30 s cache, or on another process
    for _ in range(3):  # each a real lookup of a key known to be valid
        r = await neighbour.get("/v1/resources", headers=bearer(created.secret_key))
        assert r.status_code == 200, r.text
        n.app.state.key_cache.clear()
    # A key never seen valid waits like the attacker's (up to a minute), but from this address
    # only: the same key works from anywhere else.
    assert_bad_key_429(await neighbour.get("/v1/resources", headers=bearer(created.public_key)))
    assert (
        await n.at(ELSEWHERE).get("/v1/resources", headers=bearer(created.public_key))
    ).status_code == 200
    # A key revoked since it was valid is looked up once more (401), then waits too.
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE api_keys SET revoked_at = created_at"))
    n.app.state.key_cache.clear()
    r = await neighbour.get("/v1/resources", headers=bearer(created.secret_key))
    assert r.status_code == 401
    assert_bad_key_429(await neighbour.get("/v1/resources", headers=bearer(created.secret_key)))


async def test_booking_pages_and_health_need_no_key_and_are_not_counted(
    net: tuple[Net, apps.CreatedApp],
) -> None:
    n, _ = net
    attacker = n.at(ATTACKER)
    for i in range(LIMIT + 2):
        await attacker.get("/v1/resources", headers=bearer(f"sk_flood{i}"))
    assert (await attacker.get("/healthz")).status_code == 200
    assert (await attacker.get("/book/no-such-page")).status_code == 404


async def test_redis_shares_the_bad_key_count_and_the_known_keys(engine: AsyncEngine) -> None:
    url = redis_url()
    await clean(engine)
    settings = Settings(
        run_worker=False, redis_url=url, redis_timeout_seconds=SHARED_TIMEOUT, bad_key_limit=LIMIT
    )
    http, created = await make_api(engine, Clock(), settings)
    await http.aclose()
    one = Net(http._transport.app)  # type: ignore[attr-defined]
    two = Net(create_app(settings, engine=engine, clock=Clock()))
    # A fresh address: Redis keeps counts between runs (and counts an IPv6 address by its /64).
    fresh = uuid.uuid4().hex
    attacker_ip = f"2001:db8:{fresh[:4]}:{fresh[4:8]}::1"
    try:
        assert (
            await one.at(attacker_ip).get("/v1/resources", headers=bearer(created.secret_key))
        ).status_code == 200  # valid, seen by the first process only
        answers = [
            await net.at(attacker_ip).get("/v1/resources", headers=bearer(f"sk_{i}"))
            for i, net in enumerate((one, two, one, two, one))
        ]
        assert [r.status_code for r in answers[:LIMIT]] == [401] * LIMIT
        assert 429 in [r.status_code for r in answers[LIMIT:]]
        assert_bad_key_429(answers[-1])
        # The second process never looked the key up, yet knows it was valid.
        r = await two.at(attacker_ip).get("/v1/resources", headers=bearer(created.secret_key))
        assert r.status_code == 200, r.text
    finally:
        await one.close()
        await two.close()
