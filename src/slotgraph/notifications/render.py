"""The email templates: Jinja2, in a sandbox, looked up in this order:

1. the app's own (`notifications.templates` in its settings, by file name),
2. the server's directory (SLOTGRAPH_MAIL_TEMPLATES_DIR),
3. the built-in ones (notifications/templates/).

For an email of kind K to audience A, the body is the first of `A.K.txt`, `A.txt` (and `.html`
for the HTML part) and the subject the first of `A.K.subject`, `A.subject`. Templates hold
formatting only: what to say is decided by kinds.py and the context below.

Each environment speaks one locale: `_()` in a template (Jinja2's i18n extension, new style)
translates through the pages' catalogues (web/locales/<locale>.po), so an app's own template may
use it too, and one that does not keeps rendering exactly what it says.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    DictLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment

from slotgraph import i18n
from slotgraph.notifications import template_rules

log = logging.getLogger(__name__)

BUILT_IN = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@functools.lru_cache(maxsize=16)
def _server_environment(templates_dir: str | None, catalogue: str) -> SandboxedEnvironment:
    return _environment(_server_loaders(templates_dir), catalogue)


def _server_loaders(templates_dir: str | None) -> list[BaseLoader]:
    loaders: list[BaseLoader] = []
    if templates_dir:
        loaders.append(FileSystemLoader(templates_dir))
    loaders.append(FileSystemLoader(BUILT_IN))
    return loaders


def _environment(loaders: list[BaseLoader], catalogue: str) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(catalogue), newstyle=True)  # type: ignore[attr-defined]
    return env


def environment(
    templates_dir: str | None,
    overrides: Mapping[str, str] | None = None,
    locale: str = i18n.DEFAULT_LOCALE,
) -> SandboxedEnvironment:
    """The templates for one email: the app's `overrides` first, in `locale`'s catalogue."""
    catalogue = i18n.catalogue_for(locale)
    if not overrides:
        return _server_environment(templates_dir, catalogue)
    loaders = [_AppTemplates(dict(overrides)), *_server_loaders(templates_dir)]
    return _environment(loaders, catalogue)


class _AppTemplates(DictLoader):
    """An app's overrides. One stored before template_rules existed may loop without end: it is
    passed over (as if absent), so the server's or the built-in template is used instead."""

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, None, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        refused = template_rules.problem(source)
        if refused is not None:
            log.warning("the app's template %s is not used: %s", template, refused)
            raise TemplateNotFound(template)
        return source, filename, uptodate


# The most characters an email's subject, text or HTML may render to. An app's template only
# formats (template_rules.py), but what it renders still grows with its length times a value's:
# `{{details}}` 1,800 times (19,800 characters) over a booking's 10,000-character details was
# 18 million characters in one part, 146 MB at its peak with HTML escaping, for every email.
# The built-in templates render a few thousand.
MAX_RENDERED = 1_000_000


class RenderedTooLong(Exception):
    """A template rendered more than MAX_RENDERED characters: the email is not composed."""


def render(
    env: SandboxedEnvironment, *, audience: str, kind: str, context: Mapping[str, Any]
) -> Rendered:
    def pick(suffix: str) -> str:
        template = env.select_template([f"{audience}.{kind}.{suffix}", f"{audience}.{suffix}"])
        parts, size = [], 0
        for part in template.generate(context):  # stops at the bound, not after it
            size += len(part)
            if size > MAX_RENDERED:
                raise RenderedTooLong(
                    f"{template.name} renders more than {MAX_RENDERED:,} characters"
                )
            parts.append(part)
        return "".join(parts)

    subject = " ".join(pick("subject").split())  # one line, whatever the template did
    return Rendered(subject=subject, text=pick("txt"), html=pick("html"))
