"""An OSError of a request's own (a file, a calendar server's or SMTP's socket) is a fault, 500
internal_error logged with its traceback; only the database's own unreachability is 503.

Before, the error handler took every OSError for a lost database: 503 `database_unavailable`
with `Retry-After`, logged as an outage without a traceback (docs/security.md).
"""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.api.app import create_app
from tests.api.conftest import TEST_SETTINGS, Api

FAULTS: list[OSError] = [
    ConnectionRefusedError(111, "Connection refused"),  # a CalDAV server, SMTP
    ConnectionResetError(104, "Connection reset by peer"),
    FileNotFoundError(2, "No such file or directory"),
    TimeoutError("timed out"),  # asyncio.wait_for around a call of the request's own
    OSError(36, "File name too long"),
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: type(f).__name__)
async def test_an_oserror_of_the_requests_own_is_a_500_not_an_outage(
    engine: AsyncEngine, api: Api, caplog: pytest.LogCaptureFixture, fault: OSError
) -> None:
    app = create_app(TEST_SETTINGS, engine=engine, clock=api.clock)

    async def fails() -> None:
        raise fault

    app.add_api_route("/v1/fails", fails)
    caplog.set_level(logging.INFO)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        r = await http.get("/v1/fails")
        # the database is there all along: the next request is served
        ok = await http.get("/v1/resources", headers={"Authorization": f"Bearer {api.key}"})
    assert r.status_code == 500, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "internal_error"
    assert "retry-after" not in r.headers
    assert ok.status_code == 200, ok.text
    assert [rec.exc_info[1] for rec in caplog.records if rec.exc_info] == [fault]
    assert not [rec for rec in caplog.records if "database unavailable" in rec.getMessage()]
