"""A time zone name too long for a file name is an unknown zone (422), not an outage (503).

`ZoneInfo` looks a name up as a file of the tz database; a name over 255 bytes raises OSError
("File name too long"), which the error handler takes for the database being unreachable: the
public key's `/v2` request with a long `Timekit-Timezone` (or `output_timezone`) was answered
503 `database_unavailable` and logged as an outage.
"""

from __future__ import annotations

from tests.api.conftest import Api
from tests.api.test_timekit import basic

LONG = "A" * 3000


async def test_a_long_zone_name_is_an_unknown_zone(api: Api) -> None:
    headers = {**basic(api.public_key), "Timekit-Timezone": LONG}
    r = await api.http.get("/v2/resources", headers=headers)
    assert r.status_code == 422, r.text
    assert list(r.json()["errors"]) == ["Timekit-Timezone"]
    assert LONG not in r.text  # the name is not echoed at length
    res = await api.resource()
    body = {
        "mode": "roundrobin_random",
        "resources": [res["resource_id"]],
        "from": "2024-05-06T00:00:00Z",
        "to": "2024-05-07T00:00:00Z",
        "length": "30 minutes",
        "output_timezone": LONG,
    }
    r = await api.http.post("/v2/availability", json=body, headers=basic(api.public_key))
    assert r.status_code == 422, r.text
    assert list(r.json()["errors"]) == ["output_timezone"]
    # The same in /v1 (a resource's zone) and on a booking page (`?tz=`, which falls back).
    r = await api.post("/v1/resources", {"name": "x", "timezone": LONG})
    assert r.status_code == 422, r.text
