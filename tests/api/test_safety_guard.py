"""Issue 10: the key before the body, a bounded body, and no 5xx for any input.

Each test reproduces an item of "What was seen" and asserts what a caller sees. The bounds come
from docs/security.md: 64 KiB of body, JSON nested at most 32 deep, integers in 64 bits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api.conftest import Api
from tests.web.pages import Doc, make_page

KIB = 1024
SLOT = {"start_time": "2024-05-18T10:00:00Z", "end_time": "2024-05-18T11:00:00Z"}
ROUTES = [  # a secret-key write, a public-key write, and the /v2 adapter's
    ("POST", "/v1/resources"),
    ("POST", "/v1/bookings"),
    ("POST", "/v2/bookings"),
]


class Chunks:
    """A streamed body (no Content-Length) that counts how much of it the server pulled."""

    def __init__(self, total: int, chunk: int = 64 * KIB) -> None:
        self.total, self.chunk, self.pulled = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            self.pulled += self.chunk
            yield b"[" * self.chunk


def _auth(key: str | None) -> dict[str, str]:
    json = {"Content-Type": "application/json"}
    return {"Authorization": f"Bearer {key}", **json} if key else json


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def assert_422(r: Any, field: str) -> None:
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_error"
    assert field in [e["field"] for e in r.json()["errors"]], r.text


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_no_key_is_401_whatever_the_body(api: Api, method: str, path: str) -> None:
    for body in (b"{not json", b"[" * 100_000, b'{"name": "x"}'):
        r = await api.http.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 401, r.text
        assert r.json()["code"] == "unauthenticated"


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_100_mb_without_a_key_is_401_unread(api: Api, method: str, path: str) -> None:
    body = Chunks(100 * KIB * KIB)
    r = await api.http.request(method, path, content=body)
    assert r.status_code == 401
    assert body.pulled <= 64 * KIB  # at most what the transport hands over before asking


async def test_the_public_key_on_a_secret_route_is_403_before_the_body(api: Api) -> None:
    body = Chunks(100 * KIB * KIB)
    r = await api.http.post("/v1/resources", content=body, headers=_auth(api.public_key))
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden"
    assert body.pulled <= 64 * KIB


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_a_body_over_64_kib_is_413(api: Api, method: str, path: str) -> None:
    key = api.public_key if path != "/v1/resources" else api.secret_key
    streamed = Chunks(100 * KIB * KIB, chunk=4 * KIB)
    r = await api.http.request(method, path, content=streamed, headers=_auth(key))
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "payload_too_large"
    assert streamed.pulled <= 68 * KIB  # stopped at the limit, not at 100 MB
    declared = b" " * (64 * KIB + 1)  # with Content-Length: refused before reading
    r = await api.http.request(method, path, content=declared, headers=_auth(key))
    assert r.status_code == 413
    assert "65536" in r.text


async def test_a_body_of_exactly_64_kib_is_read(api: Api) -> None:
    body = b'{"name": "x", "timezone": "UTC", "details": "' + b" " * KIB + b'"}'
    body = body.ljust(64 * KIB, b" ")
    r = await api.http.post("/v1/resources", content=body, headers=_auth(api.secret_key))
    assert r.status_code == 422  # read and parsed: `details` is not a resource field
    assert r.json()["errors"][0]["field"] == "details"


async def test_json_deeper_than_32_is_422_naming_the_bound(api: Api) -> None:
    resource = await api.resource()
    base = {"resource_id": resource["resource_id"], "customer": _customer(), **SLOT}
    # The booking object is level 1, meta's value level 2: 32 levels in all are accepted.
    r = await api.post("/v1/bookings", {**base, "meta": nested(31)})
    assert r.status_code == 201, r.text
    for depth in (32, 300, 30_000):
        raw = b'{"meta": {"a": ' + b"[" * depth + b"]" * depth + b"}}"
        r = await api.http.post("/v1/bookings", content=raw, headers=_auth(api.public_key))
        assert r.status_code == 422, r.text
        assert "nested deeper than 32 levels (max_json_depth)" in r.json()["detail"]


@pytest.mark.parametrize("value", [2**63, 2**64, 2**70, -(2**63) - 1])
async def test_integers_outside_64_bits_are_422(api: Api, value: int) -> None:
    resource = await api.resource()
    body = {"resource_id": resource["resource_id"], "customer": _customer(), **SLOT}
    assert_422(await api.post("/v1/bookings", {**body, "meta": {"n": value}}), "meta.n")
    assert_422(
        await api.post("/v1/resources", {"name": "x", "timezone": "UTC", "meta": {"n": [value]}}),
        "meta.n.0",
    )
    ok = await api.post("/v1/bookings", {**body, "meta": {"n": 2**63 - 1, "m": -(2**63)}})
    assert ok.status_code == 201, ok.text
    assert ok.json()["meta"] == {"n": 2**63 - 1, "m": -(2**63)}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"name": "a\\u0000b", "timezone": "UTC"}', "name"),
        (b'{"name": "a\\ud800b", "timezone": "UTC"}', "name"),
        (b'{"name": "ok", "timezone": "UTC", "meta": {"k": "\\udfff"}}', "meta.k"),
        (b'{"name": "ok", "timezone": "UTC", "meta": {"k\\u0000": 1}}', "meta.(key)"),
        (b'{"name": "ok", "timezone": "UTC", "meta": {"k": NaN}}', "meta.k"),
        (b'{"name": "ok", "timezone": "UTC", "meta": {"k": 1e999}}', "meta.k"),
    ],
)
async def test_nul_surrogates_and_non_finite_numbers_are_422(
    api: Api, raw: bytes, field: str
) -> None:
    r = await api.http.post("/v1/resources", content=raw, headers=_auth(api.secret_key))
    assert_422(r, field)
    assert (await api.get("/v1/resources")).json()["data"] == []


async def test_nul_in_a_query_filter_or_path_is_422(api: Api) -> None:
    for path in ("/v1/resources?kind=a%00b", "/v1/resources?location=%00"):
        r = await api.http.get(path, headers=_auth(api.secret_key))
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["loc"][0] == "query"
    r = await api.http.get("/v2/projects/hosted/a%00b", headers=_auth(api.public_key))
    assert r.status_code == 422, r.text  # in Timekit's shape, naming the path
    assert r.json()["code"] == "validation_error"
    assert "path" in r.json()["errors"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("buffer_after", "P100Y"), ("buffer_after", "P10000Y"), ("min_notice", "P1000000Y")],
)
async def test_durations_no_column_holds_are_422(api: Api, field: str, value: str) -> None:
    r = await api.post("/v1/resources", {"name": "x", "timezone": "UTC", field: value})
    assert_422(r, field)


def _customer() -> dict[str, str]:
    return {"name": "Ada", "email": "ada@example.com"}


async def test_a_booking_page_answers_an_oversized_form_with_its_error_page(api: Api) -> None:
    await make_page(api)
    r = await api.http.post(
        "/book/dr-berg",
        content=b"name=" + b"a" * (64 * KIB),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("text/html")
    assert Doc(r.text).one("error")
