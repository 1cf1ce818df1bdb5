"""An Idempotency-Key's answer is replayed only to the caller that got it first.

The stored answer is what its first caller was shown: for the secret key the whole booking, its
client's id and the customer token; for a visitor with the public key, their booking's customer
token. Seen from outside (docs/security.md), the public key must never read what the secret key
was answered, a customer token never more than its own view, and one visitor never another's
token, whatever key and body they send. Nor may a visitor take a key the app's server will use
first, or learn which keys it used: the secret key's keys are its own.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import Api

SLOT = {"start_time": "2024-06-03T10:00:00Z", "end_time": "2024-06-03T11:00:00Z"}


def from_ip(api: Api, ip: str) -> httpx.AsyncClient:
    app = api.http._transport.app  # type: ignore[attr-defined]
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 40000)), base_url="http://test"
    )


async def keyed(
    http: httpx.AsyncClient, key: str, method: str, path: str, body: Any, *, idem: str
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": idem}
    return await http.request(method, path, json=body, headers=headers)


async def count_bookings(api: Api) -> int:
    return len((await api.get("/v1/bookings")).json()["data"])


async def test_the_public_key_does_not_get_the_secret_keys_answer(api: Api) -> None:
    resource = await api.resource()
    body = {
        "resource_id": resource["resource_id"],
        **SLOT,
        "customer": {"name": "Ann", "email": "ann@example.com"},
    }
    first = await keyed(api.http, api.secret_key, "POST", "/v1/bookings", body, idem="order-17")
    assert first.status_code == 201, first.text
    assert first.json()["client_id"] is not None
    # The same key and body with the public key (from a page that guessed the server's key):
    # the visitor's own request, never the server's answer (the slot is the server's booking).
    r = await keyed(api.http, api.public_key, "POST", "/v1/bookings", body, idem="order-17")
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "slot_unavailable"
    assert first.json()["customer_token"] not in r.text
    assert first.json()["client_id"] not in r.text
    assert "idempotent-replayed" not in r.headers
    assert await count_bookings(api) == 1
    # The secret key's own retry still gets its answer.
    again = await keyed(api.http, api.secret_key, "POST", "/v1/bookings", body, idem="order-17")
    assert (again.status_code, again.json()) == (201, first.json())


async def test_a_customer_token_does_not_get_the_secret_keys_answer(api: Api) -> None:
    resource = await api.resource()
    booked = await api.book(
        resource_id=resource["resource_id"],
        customer={"name": "Ann", "email": "ann@example.com"},
        details="internal: pays late",
        meta={"crm": "vip"},
        **SLOT,
    )
    path = f"/v1/bookings/{booked['booking_id']}"
    moved = {"start_time": "2024-06-04T10:00:00Z", "end_time": "2024-06-04T11:00:00Z"}
    first = await keyed(api.http, api.secret_key, "PUT", path, moved, idem="move-1")
    assert first.status_code == 200, first.text
    assert first.json()["meta"] == {"crm": "vip"}
    token = booked["customer_token"]
    r = await keyed(api.http, token, "PUT", path, moved, idem="move-1")
    assert r.status_code == 200, r.text  # its own request (the time it has), its own view
    assert r.json()["meta"] == {}
    assert "idempotent-replayed" not in r.headers
    assert "vip" not in r.text
    assert "pays late" not in r.text
    # Its own request with its own key: its own view (no meta, no details).
    own = await keyed(api.http, token, "PUT", path, moved, idem="move-2")
    assert own.status_code == 200, own.text
    assert own.json()["meta"] == {}
    assert own.json()["details"] is None


async def test_one_visitor_does_not_get_anothers_customer_token(api: Api) -> None:
    resource = await api.resource()
    body = {
        "resource_id": resource["resource_id"],
        **SLOT,
        "customer": {"name": "Ann", "email": "ann@example.com"},
    }
    async with from_ip(api, "198.51.100.7") as ann, from_ip(api, "203.0.113.9") as mallory:
        first = await keyed(ann, api.public_key, "POST", "/v1/bookings", body, idem="k-1")
        assert first.status_code == 201, first.text
        token = first.json()["customer_token"]
        # Another address with the same public key, key and body: not Ann's answer.
        r = await keyed(mallory, api.public_key, "POST", "/v1/bookings", body, idem="k-1")
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "idempotency_key_reused"
        assert token not in r.text
        # Ann's retry from her address gets her answer, token included.
        again = await keyed(ann, api.public_key, "POST", "/v1/bookings", body, idem="k-1")
        assert (again.status_code, again.json()) == (201, first.json())
    assert await count_bookings(api) == 1


async def test_a_visitor_is_who_the_rate_limit_counts(api: Api) -> None:
    """One rule for who a visitor is (slotgraph/addresses.py): an IPv6 host's retry from its next
    address in the same /64 is the same visitor, replayed, as the rate limits count it; another
    /64 is another visitor. Before, the full address told callers apart: the retry got a 422."""
    resource = await api.resource()
    body = {
        "resource_id": resource["resource_id"],
        **SLOT,
        "customer": {"name": "Ann", "email": "ann@example.com"},
    }
    async with (
        from_ip(api, "2001:db8:7:9:1:2:3:4") as ann,
        from_ip(api, "2001:db8:7:9:abcd::1") as ann_later,
        from_ip(api, "2001:db8:7:a:1:2:3:4") as neighbour,
    ):
        first = await keyed(ann, api.public_key, "POST", "/v1/bookings", body, idem="k-6")
        assert first.status_code == 201, first.text
        again = await keyed(ann_later, api.public_key, "POST", "/v1/bookings", body, idem="k-6")
        assert (again.status_code, again.json()) == (201, first.json())
        assert again.headers["idempotent-replayed"] == "true"
        other = await keyed(neighbour, api.public_key, "POST", "/v1/bookings", body, idem="k-6")
        assert other.status_code == 422, other.text
        assert other.json()["code"] == "idempotency_key_reused"
    assert await count_bookings(api) == 1


async def test_a_visitor_cannot_take_the_servers_key_first(api: Api) -> None:
    """The public key is in every page, and servers often key a create by their own order
    (`order-18`). Before, a visitor who sent that key first, even with a body refused at once,
    made the server's own request with it `422 idempotency_key_reused` for 24 hours."""
    resource = await api.resource()
    squat = await keyed(
        api.http, api.public_key, "POST", "/v1/bookings", {"resource_id": "x"}, idem="order-18"
    )
    assert squat.status_code == 422, squat.text
    assert squat.json()["code"] == "validation_error"
    body = {
        "resource_id": resource["resource_id"],
        **SLOT,
        "customer": {"name": "Ann", "email": "ann@example.com"},
    }
    first = await keyed(api.http, api.secret_key, "POST", "/v1/bookings", body, idem="order-18")
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = await keyed(api.http, api.secret_key, "POST", "/v1/bookings", body, idem="order-18")
    assert (again.status_code, again.json()) == (201, first.json())
    # Nor does the booking's customer token take the key the server moves it with next.
    path = f"/v1/bookings/{first.json()['booking_id']}"
    token = first.json()["customer_token"]
    bad = {"start_time": "2024-06-03T10:00:00Z", "end_time": "2024-06-03T10:01:00Z"}
    taken = await keyed(api.http, token, "PUT", path, bad, idem="move-18")
    assert taken.status_code == 422, taken.text  # another length: refused
    moved = {"start_time": "2024-06-04T10:00:00Z", "end_time": "2024-06-04T11:00:00Z"}
    own = await keyed(api.http, api.secret_key, "PUT", path, moved, idem="move-18")
    assert own.status_code == 200, own.text
    assert own.json()["start_time"] == "2024-06-04T10:00:00Z"


async def test_a_visitor_cannot_tell_which_keys_the_server_used(api: Api) -> None:
    """Before, the same key from the public key was `422 idempotency_key_reused` exactly when
    the server had used it in the last day (on any route): an answer that told a visitor which
    orders a shop had keyed. Now the visitor gets its own request's answer either way."""
    used = await keyed(
        api.http,
        api.secret_key,
        "POST",
        "/v1/clients",
        {"name": "Bo", "email": "bo@example.com"},
        idem="order-19",
    )
    assert used.status_code == 201, used.text
    for idem in ("order-19", "order-20"):  # used by the server, and not
        r = await keyed(
            api.http, api.public_key, "POST", "/v1/bookings", {"resource_id": "x"}, idem=idem
        )
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "validation_error"
