"""An app's own email templates are formatting: their work grows with their length only.

The worker renders them inside `serve`, on the event loop every app's requests share. Jinja2's
sandbox stops a template from reaching into the server, not from looping: these were stored
(200) and then held the server while an email was rendered, or filled its memory.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.worker import Worker
from tests.api.conftest import Api
from tests.api.test_emails import book_ann, drain, mail_api, mailbox, resource, worker
from tests.mailbox import Mailbox

__all__ = ["mail_api", "mailbox", "worker"]  # test_emails.py's fixtures, used here

ENDLESS = [
    "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
    "{{ 'x' * 1000000000 }}",
    "{{ customer.name|center(1000000000) }}",
    "{{ '%01000000000d'|format(1) }}",
    "{{ _('%(n)01000000000d', n=1) }}",
    "{% macro f() %}{{ f() }}{{ f() }}{% endmacro %}{{ f() }}",
    "{% set a = when ~ when %}{% set a = a ~ a %}{% set a = a ~ a %}{{ a }}",
    "{{ customer.name.ljust(1000000000) }}",
    "{% include 'customer.txt' %}",
    # gettext formats its message with `%`: a message from the context brings its own width
    # (a customer named "%01000000000d", from the public key).
    "{{ _(customer.name) }}",
    "{{ gettext(customer.name ~ '') }}",
    "{{ ngettext('a', customer.name, 2) }}",
    "{{ pgettext(customer.name, 'a') }}",
    "{{ _(*[customer.name]) }}",
    # Filters that grow their value, applied to their own output: each pass is longer by the
    # value's length again, so a chain of k costs k x k x its length (190 urlencodes of a
    # 10,000-character details: about 13 s of CPU, and ten such in one template).
    "{{ details|urlencode|urlencode }}",
    "{{ details|forceescape|e|forceescape }}",
    "{{ (details|urlencode ~ 'x')|forceescape }}",
]


@pytest.mark.parametrize("template", ENDLESS)
async def test_a_template_that_can_work_without_end_is_refused(api: Api, template: str) -> None:
    r = await api.put("/v1/app", {"notifications": {"templates": {"customer.txt": template}}})
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["notifications.templates.customer.txt"]
    assert (await api.get("/v1/app")).json()["notifications"]["templates"] == {}


async def test_every_refused_template_of_one_put_is_named_in_one_answer(api: Api) -> None:
    # Three refused and one allowed: an app learns of all three at once, not one per PUT.
    templates = {
        "customer.txt": "{{ 'x' * 1000000000 }}",
        "customer.subject": "Hello {{ customer.name }}",
        "owner.html": "{% include 'customer.txt' %}",
        "customer.booked.subject": "{{ details|urlencode|urlencode }}",
    }
    r = await api.put("/v1/app", {"notifications": {"templates": templates}})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == [
        "notifications.templates.customer.txt",
        "notifications.templates.owner.html",
        "notifications.templates.customer.booked.subject",
    ]
    # a rule of ours, typed as pydantic types a validator's refusal (like every other 422)
    assert {e["type"] for e in r.json()["errors"]} == {"value_error"}
    assert (await api.get("/v1/app")).json()["notifications"]["templates"] == {}


async def test_formatting_is_allowed(api: Api) -> None:
    template = (
        "{% if kind == 'booked' %}{{ _('Hello') }}, {{ customer.name|e|title }}!"
        "{% else %}{% trans name=customer.name %}Dear {{ name }}{% endtrans %}{% endif %}\n"
        "{{ when }} {{ resource.location|default('-') }} {{ booking.start_time }} {{ manage_url }}"
        "{{ details|urlencode }} {{ details|urlencode ~ details|forceescape }}"
    )
    r = await api.put("/v1/app", {"notifications": {"templates": {"customer.txt": template}}})
    assert r.status_code == 200, r.text


async def test_one_stored_before_is_passed_over_for_the_built_in(
    mail_api: Api, worker: Worker, mailbox: Mailbox, engine: AsyncEngine
) -> None:
    # What an older version stored (a loop that ends, so that the test does).
    looping = "{% for i in range(3) %}loop {% endfor %}"
    r = await mail_api.put("/v1/app", {"notifications": {"templates": {"customer.txt": "ok"}}})
    assert r.status_code == 200, r.text
    settings = r.json()
    kept = {k: settings[k] for k in ("allowed_origins", "public_graphs", "rate_limits")}
    stored = {
        **kept,
        "notifications": {**settings["notifications"], "templates": {"customer.txt": looping}},
    }
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE apps SET settings = :s"), {"s": __import__("json").dumps(stored)}
        )
    await book_ann(mail_api, await resource(mail_api, email=None))
    await drain(worker)
    (mail,) = mailbox.to("ann@example.com")
    assert "loop" not in mail.text()
    assert "Your booking is confirmed." in mail.text()  # the built-in text part


async def test_an_email_that_renders_too_long_is_not_sent(
    mail_api: Api, worker: Worker, mailbox: Mailbox, engine: AsyncEngine
) -> None:
    # Formatting only, and yet: `{{ details }}` 1,800 times over a booking's 10,000-character
    # details rendered 73 million characters (146 MB for one part, before the SMTP client's
    # copies), for every email of every booking. An email's part stops at MAX_RENDERED.
    many = "{{details}}" * 1800  # 19,800 characters: within the 20,000 a template may hold
    templates = {"customer.txt": many, "customer.html": "<p>{{ details }}</p>"}
    r = await mail_api.put("/v1/app", {"notifications": {"templates": templates}})
    assert r.status_code == 200, r.text
    await book_ann(mail_api, await resource(mail_api, email=None), details="<" * 10_000)
    await drain(worker)
    assert mailbox.to("ann@example.com") == []
    async with engine.connect() as conn:
        errors = (await conn.execute(text("SELECT error FROM delivery_attempts"))).scalars().all()
    assert errors, "the attempt is logged"
    assert all("more than 1,000,000 characters" in (e or "") for e in errors), errors


async def test_a_long_email_within_the_bound_is_sent(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    r = await mail_api.put(
        "/v1/app", {"notifications": {"templates": {"customer.txt": "{{ details }}" * 20}}}
    )
    assert r.status_code == 200, r.text
    await book_ann(mail_api, await resource(mail_api, email=None), details="x" * 10_000)
    await drain(worker)
    (mail,) = mailbox.to("ann@example.com")
    assert mail.text().count("x" * 10_000) == 20  # 200,000 characters: sent
