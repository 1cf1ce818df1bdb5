"""The field types every request shares: validated names, emails, time zones, hours, meta, the
graph and status enums, and `Input`, the base of every request body (unknown fields refused)."""

from __future__ import annotations

import functools
import re
import zoneinfo
from datetime import datetime
from email.utils import getaddresses
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from slotgraph.domain.graphs import GRAPHS
from slotgraph.i18n import is_known_locale

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_META_BYTES = 16_384


MAX_ZONE_NAME = 64


def known_zone(name: str) -> ZoneInfo | None:
    """The IANA zone `name`, or None. ZoneInfo reads a file named after it: a name too long for
    a file name raised OSError, which the error handler answers as the database being down
    (503); a name over MAX_ZONE_NAME is no zone (the longest is 32 characters)."""
    if len(name) > MAX_ZONE_NAME:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def unknown_zone(name: str) -> str:
    """What a name that is no IANA zone is told, with the zone meant when the name is a zone's
    last part (`Oslo`, `new york`: "did you mean 'Europe/Oslo'?"). README's tour has
    `"timezone": "Europe/Oslo"`, and `"Oslo"` was answered "unknown IANA time zone 'Oslo'"."""
    said = f"unknown IANA time zone {name[:MAX_ZONE_NAME]!r}"
    meant = _zones_by_city().get(name[:MAX_ZONE_NAME].strip().lower().replace(" ", "_"), ())
    if meant:
        return f"{said}; did you mean {' or '.join(repr(z) for z in meant[:3])}?"
    return said


@functools.cache
def _zones_by_city() -> dict[str, tuple[str, ...]]:
    """Each IANA zone under the lower-case last part of its name (about 600 zones, read once)."""
    cities: dict[str, list[str]] = {}
    for zone in sorted(zoneinfo.available_timezones()):
        if "/" in zone and not zone.startswith(("Etc/", "SystemV/")):
            cities.setdefault(zone.rsplit("/", 1)[1].lower(), []).append(zone)
    return {city: tuple(zones) for city, zones in cities.items()}


def _timezone(value: str) -> str:
    if known_zone(value) is None:
        raise ValueError(unknown_zone(value))
    return value


def is_one_address(value: str) -> bool:
    """Whether `value` is one mailbox as the mail system reads it: besides the shape, read as an
    address list (as the SMTP client reads `To:`) it is exactly itself. `a,b@x.example`,
    `<a>b@x.example` or `b@x.example(a)` are lists or a name and an address there: the email
    went to `a` too, a mailbox of the SMTP server's own domain."""
    if not _EMAIL.match(value):
        return False
    # Letters, digits and RFC 5322 atext only (no specials: , ; < > ( ) " : [ ]): one mailbox,
    # without asking the parser (19 us a call, on every create with a customer).
    return bool(_PLAIN_ADDRESS.match(value)) or getaddresses([value]) == [("", value)]


def _email(value: str) -> str:
    if not is_one_address(value):
        raise ValueError("not an email address")
    if "[" in value or "]" in value:  # a domain literal (a@[127.0.0.1]) names no mail domain
        raise ValueError("not an email address: a domain literal (an address in []) is refused")
    return value.strip().lower()


_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_control(value: str) -> bool:
    """Whether `value` holds a control character (C0, DEL): never in a person's name, and
    a CR or LF in one would reach an email header."""
    return _CONTROL.search(value) is not None


def _person_name(value: str) -> str:
    if has_control(value):
        raise ValueError("control characters (such as CR, LF, tab) are not allowed in a name")
    return value


def _meta(value: dict[str, Any]) -> dict[str, Any]:
    if len(orjson.dumps(value)) > MAX_META_BYTES:
        raise ValueError(f"meta is larger than {MAX_META_BYTES} bytes as JSON")
    return value


def _locale(value: str) -> str:
    if not is_known_locale(value):
        raise ValueError("not a locale Babel knows, e.g. en, de, en_GB, pt_BR")
    return value


def _graph(value: str) -> str:
    if value not in GRAPHS:
        raise ValueError(f"unknown graph; one of: {', '.join(GRAPHS)}")
    return value


# Every state of every graph, in table order: the values a booking's `status` can take.
STATUSES = tuple(dict.fromkeys(s for g in GRAPHS.values() for s in g.states))


def _status(value: str) -> str:
    if value not in STATUSES:
        raise ValueError(f"unknown status; one of: {', '.join(STATUSES)}")
    return value


def end_after_start(end: datetime | None, info: ValidationInfo) -> datetime | None:
    start = info.data.get("start_time")
    if end is not None and start is not None and end <= start:
        raise ValueError("end_time must be after start_time")
    return end


_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _hours(value: list[list[str]]) -> list[list[str]]:
    for pair in value:
        if len(pair) != 2:
            raise ValueError('each interval is ["HH:MM", "HH:MM"]')
        start, end = pair
        if not _HHMM.match(start) or not (_HHMM.match(end) or end == "24:00"):
            raise ValueError(f"{pair}: times are HH:MM (24-hour; an end may be 24:00)")
        if end != "24:00" and end <= start:
            raise ValueError(f"{pair}: the end must be after the start")
    return sorted(value)


def _weekly(value: dict[str, list[list[str]]] | None) -> dict[str, list[list[str]]] | None:
    if value is None:
        return None
    unknown = sorted(set(value) - set(WEEKDAY_NAMES))
    if unknown:
        raise ValueError(f"unknown weekdays {unknown}; use {', '.join(WEEKDAY_NAMES)}")
    return value


HoursList = Annotated[list[list[str]], Field(max_length=48), AfterValidator(_hours)]
WeeklyHours = Annotated[dict[str, HoursList] | None, AfterValidator(_weekly)]
TimeZone = Annotated[str, Field(min_length=1, max_length=MAX_ZONE_NAME), AfterValidator(_timezone)]
Email = Annotated[str, Field(max_length=320), AfterValidator(_email)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
# a client's or a customer's name (it goes into emails, their headers included)
PersonName = Annotated[Name, AfterValidator(_person_name)]
Meta = Annotated[dict[str, Any], AfterValidator(_meta)]
Text = Annotated[str, Field(max_length=10_000)]
# A booking page's and a booking's locale: what its pages and the customer's emails speak
# (words from web/locales/, else its language's, else English; dates by Babel in it).
Locale = Annotated[str, Field(min_length=2, max_length=35), AfterValidator(_locale)]
# Enums in the API description, checked by a validator (the names come from the graph tables).
GraphName = Annotated[str, Field(json_schema_extra={"enum": list(GRAPHS)}), AfterValidator(_graph)]
StatusName = Annotated[
    str, Field(json_schema_extra={"enum": list(STATUSES)}), AfterValidator(_status)
]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")
