"""GET/PUT /v1/app: the app's settings, partial updates, bounds, and who may touch them."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.api.app import create_app
from slotgraph.settings import Settings
from tests.api.conftest import Api, Clock, make_api
from tests.conftest import clean

DEFAULTS = {
    "allowed_origins": [],
    "public_graphs": [
        "instant",
        "confirm_decline",
        "instant_payment",
        "group_customer",
        "group_customer_payment",
    ],
    "rate_limits": {"public_per_minute": 600, "secret_per_minute": 6000},
}


def settings_of(body: dict[str, object]) -> dict[str, object]:
    return {k: body[k] for k in DEFAULTS}


async def test_a_new_app_has_the_documented_defaults(api: Api) -> None:
    r = await api.get("/v1/app")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "test"
    assert settings_of(body) == DEFAULTS


async def test_partial_update_keeps_what_it_leaves_out(api: Api) -> None:
    r = await api.put(
        "/v1/app", {"allowed_origins": ["https://Shop.example", "http://a.test:8080"]}
    )
    assert r.status_code == 200, r.text
    r = await api.put("/v1/app", {"rate_limits": {"public_per_minute": 30}})
    assert r.status_code == 200, r.text
    expected = {
        **DEFAULTS,
        "allowed_origins": ["https://shop.example", "http://a.test:8080"],
        "rate_limits": {"public_per_minute": 30, "secret_per_minute": 6000},
    }
    assert settings_of(r.json()) == expected
    # Stored, not just echoed.
    assert settings_of((await api.get("/v1/app")).json()) == expected
    r = await api.put("/v1/app", {"public_graphs": ["instant"]})
    assert settings_of(r.json()) == {**expected, "public_graphs": ["instant"]}


async def test_bad_settings_are_422_naming_the_field(api: Api) -> None:
    cases = {
        "allowed_origins.0": {"allowed_origins": ["https://shop.example/path"]},
        "allowed_origins.1": {
            "allowed_origins": ["https://a.example", "https://b.example; script-src *"]
        },
        "public_graphs.0": {"public_graphs": ["group_owner"]},
        "public_graphs.1": {"public_graphs": ["instant", "nope"]},
        "rate_limits.public_per_minute": {"rate_limits": {"public_per_minute": 0}},
        "rate_limits.burst": {"rate_limits": {"burst": 3}},
        "colour": {"colour": "red"},
    }
    for field, body in cases.items():
        r = await api.put("/v1/app", body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in r.json()["errors"]] == [field], r.text
    assert settings_of((await api.get("/v1/app")).json()) == DEFAULTS


async def test_only_the_secret_key_sees_its_own_app(api: Api, other_api: Api) -> None:
    public = api.as_key(api.public_key)
    assert (await public.get("/v1/app")).status_code == 403
    assert (await public.put("/v1/app", {"allowed_origins": []})).status_code == 403
    await other_api.put("/v1/app", {"allowed_origins": ["https://other.example"]})
    assert (await api.get("/v1/app")).json()["allowed_origins"] == []
    assert (await other_api.get("/v1/app")).json()["app_id"] != (await api.get("/v1/app")).json()[
        "app_id"
    ]


@pytest.mark.parametrize(
    "origin",
    [
        "https://b.example; script-src *",  # would add a directive to the pages' CSP
        "https://a.example\r\nX-Evil: y",
        "https://*.example",
        "https://a b.example",
        "https://a.example:port",
    ],
)
async def test_an_origin_is_a_host_and_port_only(api: Api, origin: str) -> None:
    r = await api.put("/v1/app", {"allowed_origins": [origin]})
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["allowed_origins.0"]
    fine = ["http://[::1]:8080", "https://xn--bcher-kva.example", "http://localhost:3000"]
    r = await api.put("/v1/app", {"allowed_origins": fine})
    assert r.status_code == 200, r.text
    assert r.json()["allowed_origins"] == fine


async def test_the_operator_caps_an_apps_rate_limits(engine: AsyncEngine) -> None:
    # Before: an app could set 1,000,000 a minute, and the operator had no say.
    await clean(engine)
    settings = Settings(run_worker=False, max_app_rate_limit=1_000)
    http, created = await make_api(engine, Clock(), settings)
    secret = {"Authorization": f"Bearer {created.secret_key}"}
    async with http:
        at = {"rate_limits": {"public_per_minute": 1_000, "secret_per_minute": 1_000}}
        r = await http.put("/v1/app", json=at, headers=secret)
        assert r.status_code == 200, r.text
        over = {"rate_limits": {"public_per_minute": 1_000, "secret_per_minute": 1_001}}
        r = await http.put("/v1/app", json=over, headers=secret)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "validation_error"
        # The same entry as every other 422's, pydantic's type included (the schema's `le`
        # gave `less_than_equal` before the ceiling moved to services/apps.py, which dropped it)
        assert r.json()["errors"] == [
            {
                "field": "rate_limits.secret_per_minute",
                "loc": ["body", "rate_limits", "secret_per_minute"],
                "message": "Input should be less than or equal to 1000 (this server's ceiling)",
                "type": "less_than_equal",
            }
        ]
        under = {"rate_limits": {"public_per_minute": 0}}  # the schema's own bound: ge=1
        r = await http.put("/v1/app", json=under, headers=secret)
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [
            {
                "field": "rate_limits.public_per_minute",
                "loc": ["body", "rate_limits", "public_per_minute"],
                "message": "Input should be greater than or equal to 1",
                "type": "greater_than_equal",
            }
        ]
        r = await http.put("/v1/app", json=over, headers=secret)
        assert r.json()["detail"] == (
            "rate_limits.secret_per_minute: Input should be less than or equal to 1000 "
            "(this server's ceiling)"
        )
        r = await http.get("/v1/app", headers=secret)
        assert r.json()["rate_limits"] == {"public_per_minute": 1_000, "secret_per_minute": 1_000}


async def test_a_rate_limit_stored_above_a_later_ceiling_counts_as_the_ceiling(
    engine: AsyncEngine,
) -> None:
    await clean(engine)
    clock = Clock()
    http, created = await make_api(engine, clock)  # no ceiling set: the default, 60,000
    secret = {"Authorization": f"Bearer {created.secret_key}"}
    async with http:
        high = {"rate_limits": {"public_per_minute": 50_000, "secret_per_minute": 50_000}}
        r = await http.put("/v1/app", json=high, headers=secret)
        assert r.status_code == 200, r.text
    # The operator sets a ceiling of 3 later: the stored 50,000 stays, and counts as 3.
    later = create_app(Settings(run_worker=False, max_app_rate_limit=3), engine=engine, clock=clock)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=later), base_url="http://test")
    async with http:
        answers = [await http.get("/v1/resources", headers=secret) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[3].headers["RateLimit-Limit"] == "3"
        assert answers[3].json()["code"] == "rate_limited"
        r = await http.get("/v1/app", headers=secret)
        assert r.status_code == 429  # the same key, the same count


def _rate_limit_schemas(doc: dict[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """The rate limits' schema as `PUT /v1/app` takes them and as `GET /v1/app` answers them."""

    def resolve(ref: object) -> dict[str, object]:
        assert isinstance(ref, dict)
        name = str(ref["$ref"]).rsplit("/", 1)[1]
        return dict(doc["components"]["schemas"][name])  # type: ignore[index]

    put = doc["paths"]["/v1/app"]["put"]  # type: ignore[index]
    sent = resolve(put["requestBody"]["content"]["application/json"]["schema"])
    answer = resolve(put["responses"]["200"]["content"]["application/json"]["schema"])
    return (
        resolve(sent["properties"]["rate_limits"]),  # type: ignore[index]
        resolve(answer["properties"]["rate_limits"]),  # type: ignore[index]
    )


@pytest.mark.parametrize("ceiling", [None, 1_000, 3_000_000])
async def test_the_schema_states_the_ceiling_the_server_enforces(
    engine: AsyncEngine, ceiling: int | None
) -> None:
    # Before: the document said `maximum: 1000000` whatever the server's ceiling (60,000 by
    # default), and a ceiling above 1,000,000 was never reached (the model refused first).
    await clean(engine)
    settings = Settings(run_worker=False)
    if ceiling is not None:
        settings = Settings(run_worker=False, max_app_rate_limit=ceiling)
    limit = ceiling or 60_000  # docs/operations.md: SLOTGRAPH_MAX_APP_RATE_LIMIT's default
    http, created = await make_api(engine, Clock(), settings)
    secret = {"Authorization": f"Bearer {created.secret_key}"}
    async with http:
        sent, shown = _rate_limit_schemas((await http.get("/openapi.json")).json())
        for name in ("public_per_minute", "secret_per_minute"):
            assert sent["properties"][name]["maximum"] == limit  # type: ignore[index]
            assert "maximum" not in shown["properties"][name]  # type: ignore[index]
            at = await http.put("/v1/app", json={"rate_limits": {name: limit}}, headers=secret)
            assert at.status_code == 200, at.text
            over = await http.put(
                "/v1/app", json={"rate_limits": {name: limit + 1}}, headers=secret
            )
            assert over.status_code == 422, over.text
            assert [e["field"] for e in over.json()["errors"]] == [f"rate_limits.{name}"]
