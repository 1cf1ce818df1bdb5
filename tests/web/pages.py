"""Helpers for the web tests: a page over the API, and reading HTML with the standard library."""

from __future__ import annotations

from html import unescape
from html.parser import HTMLParser
from typing import Any

from tests.web.conftest import Api

WEEKDAYS = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


async def make_page(api: Api, *, resources: int = 1, **fields: Any) -> dict[str, Any]:
    """A page over `resources` resources in Oslo, open 09-17 on weekdays."""
    ids = []
    for n in range(resources):
        r = await api.resource(name=f"Room {n + 1}", weekly_hours=WEEKDAYS)
        ids.append(r["resource_id"])
    body = {
        "slug": "dr-berg",
        "title": "Book Dr. Berg",
        "resource_ids": ids,
        "durations": ["PT30M", "PT60M"],
        **fields,
    }
    r = await api.post("/v1/pages", body)
    assert r.status_code == 201, r.text
    return dict(r.json())


class Doc(HTMLParser):
    """Elements with a `data-testid`, links, and forms' inputs, from one HTML page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.hooks: dict[str, list[dict[str, str]]] = {}
        self.forms: list[dict[str, Any]] = []
        self._text_of: list[dict[str, str]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: unescape(v or "") for k, v in attrs}
        a["_tag"] = tag
        a["_text"] = ""
        if "data-testid" in a:
            self.hooks.setdefault(a["data-testid"], []).append(a)
            self._text_of.append(a)
        if tag == "form":
            self.forms.append({"attrs": a, "fields": {}})
        if tag in ("input", "textarea", "select") and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")

    def handle_data(self, data: str) -> None:
        for a in self._text_of:
            a["_text"] += data

    def handle_endtag(self, tag: str) -> None:
        if self._text_of and self._text_of[-1]["_tag"] == tag:
            self._text_of.pop()

    def all(self, hook: str) -> list[dict[str, str]]:
        return self.hooks.get(hook, [])

    def one(self, hook: str) -> dict[str, str]:
        found = self.all(hook)
        assert len(found) == 1, (hook, found)
        return found[0]

    def text(self, hook: str) -> str:
        return " ".join(self.one(hook)["_text"].split())

    def form(self, hook: str) -> dict[str, Any]:
        for f in self.forms:
            if f["attrs"].get("data-testid") == hook:
                return f
        raise AssertionError(f"no form {hook}")
