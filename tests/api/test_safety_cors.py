"""Issue 10: CORS. A page on an origin the app lists may use the public key; nothing else.

Expectations from docs/security.md: preflights (which browsers send without any key) for the
public key's routes are 204 with `Access-Control-Allow-Origin` for a listed origin; the real
answer carries it only when the key's own app lists the origin; secret-key routes never do.
"""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api

SHOP = "https://shop.example"
SLOT = {"start_time": "2024-05-20T10:00:00Z", "end_time": "2024-05-20T11:00:00Z"}


async def preflight(api: Api, path: str, method: str, origin: str = SHOP, **headers: str) -> Any:
    return await api.http.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type",
            **headers,
        },
    )


async def test_a_listed_origin_may_book_with_the_public_key(api: Api) -> None:
    resource = await api.resource()
    r = await preflight(api, "/v1/bookings", "POST")
    assert r.status_code == 403  # no app lists the origin yet: no CORS headers
    assert "access-control-allow-origin" not in r.headers
    assert (await api.put("/v1/app", {"allowed_origins": [SHOP]})).status_code == 200
    r = await preflight(api, "/v1/bookings", "POST")
    assert r.status_code == 204, r.text
    assert r.headers["access-control-allow-origin"] == SHOP
    assert "POST" in r.headers["access-control-allow-methods"]
    allowed = r.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed
    body = {"resource_id": resource["resource_id"], "customer": {"name": "A", "email": "a@b.cd"}}
    r = await api.http.post(
        "/v1/bookings",
        json={**body, **SLOT},
        headers={"Authorization": f"Bearer {api.public_key}", "Origin": SHOP},
    )
    assert r.status_code == 201, r.text
    assert r.headers["access-control-allow-origin"] == SHOP
    assert "location" in r.headers["access-control-expose-headers"].lower()
    # An error is readable by the page too.
    r = await api.http.post(
        "/v1/bookings",
        json=body,
        headers={"Authorization": f"Bearer {api.public_key}", "Origin": SHOP},
    )
    assert r.status_code == 422
    assert r.headers["access-control-allow-origin"] == SHOP


async def test_other_origins_and_other_apps_get_no_cors(api: Api, other_api: Api) -> None:
    await api.put("/v1/app", {"allowed_origins": [SHOP]})
    assert (await preflight(api, "/v1/resources", "GET", "https://evil.example")).status_code == 403
    for key, origin in ((api.public_key, "https://evil.example"), (other_api.public_key, SHOP)):
        r = await api.http.get(
            "/v1/resources", headers={"Authorization": f"Bearer {key}", "Origin": origin}
        )
        assert r.status_code == 200
        assert "access-control-allow-origin" not in r.headers


async def test_secret_key_routes_never_allow_cross_origin_use(api: Api) -> None:
    await api.put("/v1/app", {"allowed_origins": [SHOP]})
    for path, method in (("/v1/clients", "GET"), ("/v1/app", "PUT"), ("/v1/resources", "POST")):
        r = await preflight(api, path, method)
        assert r.status_code == 403, (path, r.text)
        assert "access-control-allow-origin" not in r.headers
    # The secret key on a public route, from a page: answered, but not readable by the page.
    r = await api.http.get(
        "/v1/resources", headers={"Authorization": f"Bearer {api.secret_key}", "Origin": SHOP}
    )
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers


async def test_the_timekit_widget_headers_are_allowed(api: Api) -> None:
    await api.put("/v1/app", {"allowed_origins": [SHOP]})
    r = await preflight(
        api,
        "/v2/availability",
        "POST",
        **{"Access-Control-Request-Headers": "authorization,timekit-context,timekit-timezone"},
    )
    assert r.status_code == 204, r.text
    allowed = r.headers["access-control-allow-headers"].lower()
    assert "timekit-context" in allowed
    assert "timekit-timezone" in allowed
    assert (await preflight(api, "/v2/bookings", "POST")).status_code == 204
    assert (await preflight(api, "/v2/bookings", "GET")).status_code == 403  # secret-key route
