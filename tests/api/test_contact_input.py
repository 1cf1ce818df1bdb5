"""Emails and names of clients and customers: a domain literal (a@[127.0.0.1]) is not an
address, and a name holds no control characters (a CR or LF would reach an email header)."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import Api

START = "2030-05-18T10:00:00Z"
END = "2030-05-18T11:00:00Z"
BAD_NAMES = ["Ann\r\nBcc: x@example.com", "Ann\nLee", "Ann\x00", "Ann\tLee", "Ann\x1b[31m"]


def _field(r: httpx.Response) -> list[str]:
    return [e["field"] for e in r.json()["errors"]]


async def _book(api: Api, customer: dict[str, str]) -> httpx.Response:
    resource = await api.resource()
    return await api.post(
        "/v1/bookings",
        {
            "resource_id": resource["resource_id"],
            "start_time": START,
            "end_time": END,
            "customer": customer,
        },
    )


@pytest.mark.parametrize("email", ["a@[127.0.0.1]", "a@[IPv6:::1]", "a@[example.com]"])
async def test_a_domain_literal_is_refused(api: Api, email: str) -> None:
    r = await _book(api, {"name": "Ann", "email": email})
    assert r.status_code == 422, r.text
    assert _field(r) == ["customer.email"]
    r = await api.post("/v1/clients", {"name": "Ann", "email": email})
    assert r.status_code == 422, r.text
    assert _field(r) == ["email"]


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_a_name_with_control_characters_is_refused(api: Api, name: str) -> None:
    r = await _book(api, {"name": name, "email": "ann@example.com"})
    assert r.status_code == 422, r.text
    assert _field(r) == ["customer.name"]
    r = await api.post("/v1/clients", {"name": name})
    assert r.status_code == 422, r.text
    assert _field(r) == ["name"]
    client = (await api.post("/v1/clients", {"name": "Ann"})).json()
    r = await api.put(f"/v1/clients/{client['client_id']}", {"name": name})
    assert r.status_code == 422, r.text
    assert _field(r) == ["name"]


async def test_ordinary_names_and_addresses_still_pass(api: Api) -> None:
    r = await _book(api, {"name": "Zoë O'Brien-Łukasz 李", "email": "zoe+x@mail.example.com"})
    assert r.status_code == 201, r.text
