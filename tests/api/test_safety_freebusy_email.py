"""The public key never reads a resource's email, the iCalendar free/busy included.

`GET /v1/resources/{id}/freebusy` and `GET /v1/freebusy` answer `text/calendar` when asked, a
VFREEBUSY per resource whose `ATTENDEE` is the resource's email (for calendar programs that
match free/busy to a person). The JSON answer and the resource itself hide the email from the
public key (docs/security.md); the calendar answer gave it to anyone with the public key.
"""

from __future__ import annotations

from icalendar import Calendar

from tests.api.conftest import Api

WINDOW = {"start": "2024-06-01T00:00:00Z", "end": "2024-06-08T00:00:00Z"}
ICS = {"Accept": "text/calendar"}


async def test_the_public_key_gets_free_busy_without_the_email(api: Api) -> None:
    res = await api.resource(email="berg@clinic.example")
    rid = res["resource_id"]
    await api.book(
        resource_id=rid,
        start_time="2024-06-03T10:00:00Z",
        end_time="2024-06-03T11:00:00Z",
        customer={"name": "Ann", "email": "ann@example.com"},
    )
    public = api.as_key(api.public_key)
    for path, params in (
        (f"/v1/resources/{rid}/freebusy", WINDOW),
        ("/v1/freebusy", {**WINDOW, "resource_id": rid}),
    ):
        r = await public.http.get(path, params=params, headers={**public._headers(), **ICS})
        assert r.status_code == 200, r.text
        assert "berg@clinic.example" not in r.text
        (fb,) = Calendar.from_ical(r.content).walk("VFREEBUSY")
        assert "ATTENDEE" not in fb
        assert "FREEBUSY" in fb  # the busy time is there
        # The secret key's calendar names the person, as before.
        r = await api.http.get(path, params=params, headers={**api._headers(), **ICS})
        (fb,) = Calendar.from_ical(r.content).walk("VFREEBUSY")
        assert str(fb["ATTENDEE"]) == "mailto:berg@clinic.example"
