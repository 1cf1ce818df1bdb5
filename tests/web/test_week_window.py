"""Late in the week, less than one duration is left of it: the page still opens (found by the
browser tests on a Sunday evening, when the availability search refused the short window)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.web.conftest import Api
from tests.web.pages import Doc, make_page


async def test_the_page_opens_with_less_than_a_duration_left_of_the_week(api: Api) -> None:
    await make_page(api)
    api.clock.now = datetime(2024, 5, 5, 21, 45, tzinfo=UTC)  # Sunday 23:45 in Oslo
    for query in ("", "?week=2024-04-29", "?week=2024-04-29&duration=PT60M"):
        r = await api.http.get(f"/book/dr-berg{query}")
        assert r.status_code == 200, r.text
        assert Doc(r.text).one("week-title")
    r = await api.http.get("/book/dr-berg")
    assert Doc(r.text).all("time")[0]["data-start"] == "2024-05-06T07:00:00+00:00"  # Mon 09:00
