"""Translations and locale-aware formatting, for the pages (web/) and the emails (notifications/).

Here, outside the ways in: the emails are rendered by what services call, and services reach no
way in, not even through another module (tests/test_import_direction.py; this was web/i18n.py).
A locale is one file, `web/locales/<locale>.po` (gettext), read once at start and compiled in
memory: no build step, nothing in the templates changes. English is the source language (the
msgids); `en.po` exists so English is listed like any other locale. See docs/booking-pages.md.
Which locales there are is slotgraph/locales.py's (services ask it too).
"""

from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError, dates
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from slotgraph.locales import DEFAULT_LOCALE, LOCALES_DIR, available_locales

__all__ = ["DEFAULT_LOCALE", "LOCALES_DIR", "available_locales"]  # and what is defined here


def N_(message: str) -> str:
    """Marks a string in Python code for the catalogue; it is translated where it is shown."""
    return message


# A locale's name: language, then script, territory or variant, each after "_". Babel's parser
# also reads "de@euro" and "de.UTF-8" as "de", ignoring what follows: "de@x\r\nBcc: ..." was
# "known", stored from the public key, and broke the customer's emails (Content-Language).
_LOCALE_NAME = re.compile(r"[A-Za-z]{2,8}(_[A-Za-z0-9]{1,8}){0,3}")


def is_known_locale(value: str) -> bool:
    """A locale Babel knows (dates can be formatted in it), e.g. "de", "en_US", "pt_BR", written
    as a locale's name and nothing more. Parsed once (babel_locale's cache): a create with a
    locale checks it on the hot path."""
    if not _LOCALE_NAME.fullmatch(value):
        return False
    try:
        babel_locale(value)
    except (UnknownLocaleError, ValueError, TypeError):
        return False
    return True


def catalogue_for(locale: str) -> str:
    """The catalogue to use for `locale`: itself, its language ("de_AT" -> "de"), or English."""
    if locale in available_locales():
        return locale
    language = locale.replace("-", "_").split("_")[0]
    return language if language in available_locales() else DEFAULT_LOCALE


@functools.cache
def translations(locale: str) -> Translations:
    """The compiled catalogue for `locale` (see catalogue_for)."""
    name = catalogue_for(locale)
    with (LOCALES_DIR / f"{name}.po").open("rb") as f:
        catalog = read_po(f, locale=name)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf)


@functools.lru_cache(maxsize=64)
def babel_locale(name: str) -> Locale:
    """A locale parsed once (Babel parses a name and loads its data on every call otherwise)."""
    return Locale.parse(name)


# Bounded: at most 4,096 short strings (well under 1 MB).
@functools.lru_cache(maxsize=4096)
def _full_date(on: date, locale: str) -> str:
    return dates.format_date(on, format="full", locale=babel_locale(locale))


# A wall-clock time in a locale's short format ("2:30 PM", "14:30"); at most 1,440 a locale.
@functools.lru_cache(maxsize=4096)
def _short_time(at: time, locale: str) -> str:
    return dates.format_time(at, format="short", locale=babel_locale(locale))


@dataclass(frozen=True)
class Formatter:
    """Dates and times for one page view: the page's locale, the visitor's time zone."""

    locale: str
    tz: ZoneInfo

    @property
    def _babel(self) -> Locale:
        return babel_locale(self.locale)

    def local(self, value: datetime) -> datetime:
        return value.astimezone(self.tz)

    def day(self, value: date | datetime) -> str:
        """ "Friday, 3 May 2024" / "Freitag, 3. Mai 2024"."""
        if isinstance(value, datetime):
            value = self.local(value).date()
        return _full_date(value, self.locale)

    def day_short(self, value: date) -> str:
        """ "Fri 3 May" / "Fr., 3. Mai"."""
        return dates.format_skeleton("MMMEd", value, locale=self._babel)

    def time(self, value: datetime) -> str:
        """ "2:30 PM" / "14:30", in the visitor's zone."""
        local = self.local(value)
        return _short_time(time(local.hour, local.minute), self.locale)

    def when(self, value: datetime) -> str:
        """Day and time, in the visitor's zone."""
        return f"{self.day(value)}, {self.time(value)}"

    def duration(self, value: timedelta) -> str:
        """ "30 minutes" / "30 Minuten"."""
        return dates.format_timedelta(
            value, threshold=10, format="long", locale=self._babel, add_direction=False
        )

    def zone(self, tz: ZoneInfo | str | None = None) -> str:
        """A zone for people: "Central European Time (Europe/Oslo)", in the page's language."""
        zone = ZoneInfo(tz) if isinstance(tz, str) else (tz or self.tz)
        if zone.key in ("UTC", "Etc/UTC"):
            return "UTC"
        name = dates.get_timezone_name(zone, width="long", locale=self._babel)
        return f"{name} ({zone.key})"
