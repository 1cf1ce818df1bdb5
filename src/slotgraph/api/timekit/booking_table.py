"""Bookings: Timekit's fields -> slotgraph's (the translation table); the way back, a booking in
Timekit's shape, is slotgraph/timekit_shape.py's (the `timekit` webhook renders it too).

`IN` is the whole translation of a create request: each Timekit path on the left lands on the
slotgraph path on the right (`meta.timekit.*` keeps what slotgraph has no column for). Its tests
(tests/api/test_timekit_tables.py) state the expected translation independently.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from slotgraph.api.timekit import times
from slotgraph.api.timekit.common import TimekitInput, parse, validation_failed
from slotgraph.domain.graphs import SEAT_GRAPHS
from slotgraph.errors import ValidationFailed
from slotgraph.schemas import BookingCreate
from slotgraph.schemas.fields import Meta
from slotgraph.timekit_shape import RESERVED

IN: dict[str, str] = {
    "graph": "graph",
    "resource_id": "resource_id",
    "start": "start_time",
    "end": "end_time",
    "description": "details",
    "customer.name": "customer.name",
    "customer.email": "customer.email",
    "customer.phone": "customer.phone",
    "customer.timezone": "customer.timezone",
    "meta": "meta",
    "settings.max_seats": "max_seats",
    "related.owner_booking_id": "owner_booking_id",
    "what": f"meta.{RESERVED}.what",
    "where": f"meta.{RESERVED}.where",
    "project_id": f"meta.{RESERVED}.project_id",
}
# Any other customer field (voip, comment, first_name, a widget's custom fields) is kept here:
EXTRA_CUSTOMER = f"meta.{RESERVED}.customer"
# Timekit's own names for slotgraph's error paths, to answer in the client's terms.
OUT_NAMES = {ours: theirs for theirs, ours in IN.items()} | {
    "client_id": "customer",
    "resource_ids": "resource_id",
}

Short = Annotated[str, Field(max_length=500)]
_META: TypeAdapter[dict[str, Any]] = TypeAdapter(Meta)  # the one rule of a booking's meta


class Customer(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Short | None = None
    email: Short | None = None
    phone: Annotated[str, Field(max_length=50)] | None = None
    timezone: Annotated[str, Field(max_length=64)] | None = None


class Settings(TimekitInput):
    max_seats: int | None = None


class RelatedIn(TimekitInput):
    owner_booking_id: uuid.UUID | None = None


class BookingIn(TimekitInput):
    graph: str = "instant"
    action: Literal["create", "confirm"] | None = None  # the state comes from slotgraph's graph
    resource_id: uuid.UUID | None = None
    start: str | None = None
    end: str | None = None
    what: Short | None = None
    where: Short | None = None
    description: Annotated[str, Field(max_length=10_000)] | None = None
    customer: Customer | None = None
    meta: dict[str, Any] | None = None
    settings: Settings | None = None
    related: RelatedIn | None = None
    project_id: uuid.UUID | None = None


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and prefix not in ("meta",):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _put(target: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for p in parents:
        target = target.setdefault(p, {})
    target[leaf] = value


def booking_create(body: Any) -> BookingCreate:
    """A Timekit create request as slotgraph's BookingCreate (errors in Timekit's names)."""
    try:
        tk = parse(BookingIn, body)
    except ValidationFailed as exc:  # a type error elsewhere does not hide the times' errors
        named = {field for field, _ in exc.errors}
        raise ValidationFailed(
            exc.errors + [e for e in _times_errors(body) if e[0] not in named]
        ) from None
    given = tk.model_dump(exclude_none=True, mode="json")
    given.pop("action", None)
    if RESERVED in (tk.meta or {}):
        raise ValidationFailed.one(f"meta.{RESERVED}", "is reserved by slotgraph's Timekit adapter")
    ours: dict[str, Any] = {}
    if "meta" in given:
        ours["meta"] = dict(given.pop("meta"))
    if tk.graph in SEAT_GRAPHS:
        # A seat takes its resource and time from its class; the widget sends them anyway.
        for name in ("resource_id", "start", "end"):
            given.pop(name, None)
    for path, value in _flatten(given).items():
        if path in IN:
            _put(ours, IN[path], value)
        elif path.startswith("customer."):
            _put(ours, f"{EXTRA_CUSTOMER}.{path.removeprefix('customer.')}", value)
    # Every wrong field in one answer: the times' errors with the rest of the body's.
    bad: list[tuple[str, str]] = []
    for name in ("start_time", "end_time"):
        if name in ours:
            try:
                ours[name] = times.timestamp(ours[name], OUT_NAMES[name]).isoformat()
            except ValidationFailed as exc:
                bad += exc.errors
                del ours[name]
    try:
        created = BookingCreate.model_validate(ours)
    except ValidationError as exc:
        named = {field for field, _ in bad}
        more = [_kept_by_us(tk, e) for e in validation_failed(exc, OUT_NAMES).errors]
        raise ValidationFailed(bad + [e for e in more if e[0] not in named]) from None
    if bad:
        raise ValidationFailed(bad)
    return created


def _kept_by_us(tk: BookingIn, error: tuple[str, str]) -> tuple[str, str]:
    """`meta` refused while the client's own `meta` passes: what the adapter keeps there (a
    customer's fields beyond name, email, phone and timezone: `what`, `where` and `project_id`
    are short) made it too large, so the answer names `customer`, which the client sent."""
    extra = tk.customer.model_extra if tk.customer is not None else None
    if error[0] != "meta" or not extra:
        return error
    try:
        _META.validate_python(tk.meta or {})
    except ValidationError:
        return error
    return "customer", (
        "its fields beyond name, email, phone and timezone are kept in the booking's meta, "
        "and make it too large: " + error[1]
    )


def _times_errors(body: Any) -> list[tuple[str, str]]:
    """What is wrong with a body's `start` and `end` strings, read from the raw body (when the
    rest of it is not a BookingIn); nothing for a seat, which takes its class's times."""
    if not isinstance(body, dict):
        return []
    graph = body.get("graph", "instant")
    if isinstance(graph, str) and graph in SEAT_GRAPHS:
        return []
    errors: list[tuple[str, str]] = []
    for name in ("start", "end"):
        if isinstance(body.get(name), str):
            try:
                times.timestamp(body[name], name)
            except ValidationFailed as exc:
                errors += exc.errors
    return errors


@contextmanager
def timekit_names() -> Iterator[None]:
    """A service's 422 names slotgraph's fields; answer with Timekit's (`start`, not
    `start_time`)."""
    try:
        yield
    except ValidationFailed as exc:
        raise ValidationFailed([(OUT_NAMES.get(f, f), m) for f, m in exc.errors]) from exc
