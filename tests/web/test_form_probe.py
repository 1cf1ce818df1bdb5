"""A booking page's answers: a name with control characters is refused on the form, and the
customer's token shows back only what the visitor typed (the app's own notes stay hidden)."""

from __future__ import annotations

import httpx

from tests.web.conftest import Api
from tests.web.pages import Doc, make_page


async def _form(http: httpx.AsyncClient) -> Doc:
    page = Doc((await http.get("/book/dr-berg")).text)
    return Doc((await http.get(page.all("time")[0]["href"])).text)


async def test_a_name_with_a_line_break_brings_the_form_back(api: Api) -> None:
    await make_page(api)
    form = (await _form(api.http)).form("booking-form")
    # (a NUL is a 400 already: read_form refuses the whole form)
    for name in ("Ann\r\nBcc: x@example.com", "Ann\x1bLee", "Ann\tLee"):
        data = {**form["fields"], "name": name, "email": "ann@example.com"}
        r = await api.http.post(form["attrs"]["action"], data=data)
        assert r.status_code == 422, r.text
        doc = Doc(r.text)
        assert doc.one("form-errors")
        said = doc.text("error-name")
        assert said == "Please write this on one line, without special characters."
    assert (await api.get("/v1/bookings")).json()["data"] == []


async def test_the_customer_sees_their_answers_and_not_the_apps_meta(api: Api) -> None:
    custom = [{"key": "k0", "label": "Insurance"}]
    await make_page(api, fields={"notes": "optional", "custom": custom})
    form = (await _form(api.http)).form("booking-form")
    data = {
        **form["fields"],
        "name": "Ann",
        "email": "ann@example.com",
        "notes": "my knee",
        "f_k0": "AOK",
    }
    done = await api.http.post(form["attrs"]["action"], data=data)
    assert done.status_code == 201, done.text
    token = Doc(done.text).one("manage-link")["href"].removeprefix("/manage/")
    [booking] = (await api.get("/v1/bookings")).json()["data"]
    bid = booking["booking_id"]
    meta = {**booking["meta"], "internal": "owes money"}
    r = await api.put(f"/v1/bookings/{bid}", {"meta": meta})
    assert r.status_code == 200, r.text
    got = (await api.as_key(token).get(f"/v1/bookings/{bid}")).json()
    assert got["meta"] == {"fields": {"k0": "AOK"}}
    assert got["details"] == "my knee"
    assert got["client_id"] is None
