"""/openapi.json tells the truth: error answers, their media type, enums; /docs works offline."""

from __future__ import annotations

import re
from typing import Any

from tests.api.conftest import Api

PROBLEM = "application/problem+json"
METHODS = ("get", "put", "post", "patch", "delete")


async def _doc(api: Api) -> dict[str, Any]:
    r = await api.http.get("/openapi.json")
    assert r.status_code == 200
    return dict(r.json())


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


async def test_every_error_answer_is_documented_with_the_media_type_sent(api: Api) -> None:
    doc = await _doc(api)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, method, op in _operations(doc):
        errors = {code: r for code, r in op["responses"].items() if code[0] in "45"}
        assert errors, (method, path)
        for code, answer in errors.items():
            if path.startswith("/v2/"):
                expected = {"application/json": {"$ref": "#/components/schemas/TimekitError"}}
            else:
                expected = {PROBLEM: {"$ref": "#/components/schemas/Problem"}}
            got = {media: c["schema"] for media, c in answer["content"].items()}
            assert got == expected, (method, path, code)


# Written out from the API's rules (docs/api.md), not from the code that builds the document.
EXPECTED = {
    ("post", "/v1/bookings"): {400, 401, 403, 409, 413, 415, 422, 429},
    ("get", "/v1/bookings/{booking_id}"): {304, 401, 403, 404, 422, 429},
    ("put", "/v1/bookings/{booking_id}"): {400, 401, 403, 404, 409, 412, 413, 415, 422, 428, 429},
    ("get", "/v1/availability"): {401, 422, 429},
    ("get", "/v1/ping"): {401, 429},
    ("get", "/v1/app"): {401, 403, 429},
    ("post", "/v2/bookings"): {400, 401, 403, 409, 413, 422, 429},
    ("get", "/v2/resources/{resource_id}"): {401, 404, 422, 429},
}


async def test_statuses_of_some_operations(api: Api) -> None:
    doc = await _doc(api)
    for (method, path), wanted in EXPECTED.items():
        codes = {int(c) for c in doc["paths"][path][method]["responses"]}
        assert wanted <= codes, (method, path, sorted(wanted - codes))
    # a read takes no body: nothing about bodies or write conflicts
    codes = set(doc["paths"]["/v1/availability"]["get"]["responses"])
    assert not codes & {"400", "409", "413", "415"}


async def test_enums_are_enums(api: Api) -> None:
    doc = await _doc(api)
    schemas = doc["components"]["schemas"]
    out = schemas["BookingOut"]["properties"]
    assert set(out["graph"]["enum"]) >= {"instant", "confirm_decline", "group_owner"}
    assert set(out["status"]["enum"]) >= {"confirmed", "tentative", "cancelled", "paid"}
    params = {p["name"]: p for p in doc["paths"]["/v1/availability"]["get"]["parameters"]}
    assert params["mode"]["schema"]["enum"] == ["any", "all"]
    listing = {p["name"]: p for p in doc["paths"]["/v1/bookings"]["get"]["parameters"]}
    for name in ("graph", "status"):
        array = listing[name]["schema"]["anyOf"][0]
        assert "enum" in array["items"], name


async def test_an_unknown_status_filter_is_refused_as_the_enum_says(api: Api) -> None:
    r = await api.get("/v1/bookings", status="nonsense")
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["errors"][0]["loc"][:2] == ["query", "status"]


async def test_query_errors_say_query(api: Api) -> None:
    resource = await api.resource()
    r = await api.get(
        "/v1/availability",
        resource_id=resource["resource_id"],
        start="2024-06-01T00:00:00Z",
        end="2025-06-01T00:00:00Z",  # longer than a search window may be
        duration="PT30M",
    )
    assert r.status_code == 422, r.text
    assert [e["loc"][0] for e in r.json()["errors"]] == ["query"]


async def test_a_body_that_is_not_json_is_415_as_documented(api: Api) -> None:
    r = await api.http.post(
        "/v1/resources",
        content=b"name=x",
        headers={**api._headers(), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    assert r.headers["content-type"] == PROBLEM
    doc = await _doc(api)
    assert "415" in doc["paths"]["/v1/resources"]["post"]["responses"]


async def test_docs_work_offline(api: Api) -> None:
    for page in ("/docs", "/redoc"):
        r = await api.http.get(page)
        assert r.status_code == 200
        # The pages' headers (they share the pages' origin); no inline script but by its hash.
        # tests/browser/test_reference.py: both still work under them.
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'self'" in csp, csp
        script_src = next(d for d in csp.split("; ") if d.startswith("script-src "))
        assert "unsafe" not in script_src, csp
        assert r.headers["x-content-type-options"] == "nosniff"
        hosts = re.findall(r"""(?:https?:)?//([a-z0-9.-]+\.[a-z]{2,})""", r.text, re.IGNORECASE)
        assert hosts == [], (page, hosts)
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", r.text)
        assets += re.findall(r"""url: ?['"]([^'"]+)['"]""", r.text)
        assert assets, page
        for asset in assets:
            assert asset.startswith("/"), asset
            got = await api.http.get(asset)
            assert got.status_code == 200, asset
            assert got.content, asset
    redirect = await api.http.get("/docs/oauth2-redirect")
    assert "frame-ancestors 'self'" in redirect.headers["content-security-policy"]
