"""Rendering a page: one autoescaped Jinja2 environment per locale, and the headers every page
carries. Templates hold loops and formatting only; every string a visitor reads goes through
`{% trans %}` / `_()` and so through the locale's catalogue (slotgraph/i18n.py)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import HTMLResponse

from slotgraph import i18n
from slotgraph.i18n import N_
from slotgraph.web.security import CSRF_FIELD, csrf_token, security_headers, set_csrf_cookie

if TYPE_CHECKING:
    from jinja2 import Environment

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/static"

# A booking's state, as a visitor reads it (templates: `_(status_words[...])`).
STATUS_WORDS = {
    "confirmed": N_("Confirmed"),
    "tentative": N_("Waiting"),
    "paid": N_("Paid"),
    "cancelled": N_("Cancelled"),
    "cancelled_by_customer": N_("Cancelled by you"),
    "cancelled_by_owner": N_("Cancelled by the provider"),
    "declined": N_("Declined"),
    "expired": N_("Expired"),
    "unpaid": N_("Not paid in time"),
    "completed": N_("Completed"),
}


def precompile(locale: str = i18n.DEFAULT_LOCALE) -> None:
    """Build `locale`'s environment and compile every page template in it: the first page of a
    server took 60-95 ms more than the next (Jinja2's import, the catalogue, 15 templates at
    67 ms), its event loop blocked. Called by slotgraph/warm.py, in a thread, once a server
    whose database has booking pages has started; the environment and its template cache are
    safe to share between threads."""
    env = environment(locale)
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)


@functools.cache
def environment(locale: str) -> Environment:
    """The environment for a catalogue (few: one per .po file), with its translations. Jinja2
    is imported by the first page, not by every process at its start (docs/testing.md)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.globals["static"] = lambda name: f"{STATIC_PREFIX}/{name}"
    env.globals["status_words"] = STATUS_WORDS
    return env


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    locale: str = i18n.DEFAULT_LOCALE,
    tz: ZoneInfo | None = None,
    frame_ancestors: Iterable[str] = (),
    status_code: int = 200,
) -> HTMLResponse:
    """`template` rendered for `locale`, with the security headers, a CSRF token for its forms
    (`{{ csrf_field }}` in a form) and `fmt` (dates and times in `locale` and `tz`)."""
    token = csrf_token(request)
    env = environment(i18n.catalogue_for(locale))
    html = env.get_template(template).render(
        {
            "locale": locale,
            "lang": locale.replace("_", "-"),
            "fmt": i18n.Formatter(locale, tz or ZoneInfo("UTC")),
            "csrf_token": token,
            "csrf_name": CSRF_FIELD,
            **context,
        }
    )
    response = HTMLResponse(
        html, status_code=status_code, headers=security_headers(frame_ancestors)
    )
    response.headers["Cache-Control"] = "no-store"
    set_csrf_cookie(request, response, token)
    return response
