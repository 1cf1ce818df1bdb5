"""GET/PUT /v1/app: the app's settings, partial updates, bounds, and who may touch them."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api

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
