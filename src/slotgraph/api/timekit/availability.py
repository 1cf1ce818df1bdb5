"""POST /v2/availability: Timekit's availability query over slotgraph's slot search.

Translation table (Timekit -> slotgraph's availability SlotSearch):
  resources (or the project's) -> resource_ids     from, to -> start, end (relative allowed)
  length -> duration     timeslot_increments -> step     output_timezone -> timezone
  mode roundrobin_* -> mode "any"; mutual -> mode "all"
  buffer -> min_buffer   constraints / availability_constraints (and the project's) -> mask,
  extra_busy (see constraints.py)
Which free resource a round-robin slot names is the only choice made here: the first free one
in the given order (prioritized) or one at random (random); it decides nothing about booking.
"""

from __future__ import annotations

import random
import uuid
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Response
from pydantic import ConfigDict, Field

from slotgraph import bounds
from slotgraph.api.deps import AnyKey, Now, Session
from slotgraph.api.timekit import constraints, times
from slotgraph.api.timekit.common import TimekitInput, Zone, parse, wrap, zone_named
from slotgraph.errors import ValidationFailed
from slotgraph.services import availability, paged, projects
from slotgraph.services.availability import SlotSearch

# The search's field -> the query's (the translation table above, backwards), for its 422s.
OUT_NAMES = {
    "resource_id": "resources",
    "start": "from",
    "end": "to",
    "duration": "length",
    "step": "timeslot_increments",
    "min_buffer": "buffer",
    "timezone": "output_timezone",
}

router = APIRouter(prefix="/availability", tags=["timekit"])
JsonBody = Annotated[Any, Body()]

MODES = {"roundrobin_random": "any", "roundrobin_prioritized": "any", "mutual": "all"}
_CHOOSER = random.SystemRandom()


class AvailabilityIn(TimekitInput):
    mode: Literal["roundrobin_random", "roundrobin_prioritized", "mutual"] | None = None
    resources: Annotated[list[uuid.UUID], Field(max_length=200)] | None = None
    project_id: uuid.UUID | None = None
    from_: Any = Field(default=None, alias="from")
    to: Any = None
    length: Any = None
    buffer: Any = None
    timeslot_increments: Any = None
    output_timezone: str | None = None
    constraints: list[Any] | None = None
    availability_constraints: list[Any] | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


@router.post("")
async def fetch_availability(
    body: JsonBody, principal: AnyKey, session: Session, now: Now, zone: Zone
) -> Response:
    """Free slots in Timekit's shape. Serialised with orjson: a month of slots is thousands of
    small objects, which FastAPI's generic encoder took 3x the search itself to write."""
    tk = parse(AvailabilityIn, body if isinstance(body, dict) else {}, {"from_": "from"})
    given = tk.model_dump(exclude_none=True)
    rules: list[Any] = []
    if tk.project_id is not None:
        project = await projects.named_project(
            session, principal=principal, project_id=tk.project_id, field="project_id"
        )
        stored = dict(project.settings.get("availability") or {})
        stored.setdefault("resources", [str(r) for r in project.resource_ids])
        rules = list(project.settings.get("availability_constraints") or [])
        given = {**parse(AvailabilityIn, stored).model_dump(exclude_none=True), **given}
    resource_ids = given.get("resources") or []
    if not resource_ids and tk.project_id is not None and tk.resources is None:
        # Every resource it named is archived or gone (they drop out: services/projects.py).
        # Before, the visitor's search was a 422 on `resources`, a field it never sent.
        raise ValidationFailed.one(
            "project_id", f"project {tk.project_id} has no resources left to search"
        )
    if not resource_ids:
        raise ValidationFailed.one("resources", "at least one resource (or a project with some)")
    rules += [*given.get("constraints", []), *given.get("availability_constraints", [])]
    start, end = times.each(
        lambda: times.instant(given.get("from_", "now"), "from", now=now),
        lambda: times.instant(given.get("to", "4 weeks"), "to", now=now),
    )
    found = constraints.translate(rules, field="constraints", now=now)
    busy = list(found.blocked)
    if found.allowed is not None:
        busy += constraints.outside(found.allowed, start, end)
    out_zone = (
        zone_named(given["output_timezone"], "output_timezone")
        if "output_timezone" in given
        else zone
    )
    mode = given.get("mode", "roundrobin_random")
    query = SlotSearch(
        resource_ids=resource_ids,
        start=start,
        end=end,
        duration=times.duration(given.get("length", "1 hour"), "length"),
        step=(
            times.bounded(
                bounds.slot_step,
                times.duration(given["timeslot_increments"], "timeslot_increments"),
                "timeslot_increments",
            )
            if "timeslot_increments" in given
            else None
        ),
        mode=MODES[mode],
        timezone=out_zone.key,  # the search answers in the wanted zone already
        mask=found.mask,
        min_buffer=(
            times.bounded(bounds.buffer, times.duration(given["buffer"], "buffer"), "buffer")
            if "buffer" in given
            else None
        ),
        extra_busy=sorted(busy),
    )
    try:
        slots = await availability.search(
            session,
            principal=principal,
            query=query,
            limit=availability.largest_limit(len(resource_ids)),
            now=now,
        )
    except ValidationFailed as exc:  # the search's checks name its fields: answer with Timekit's
        raise ValidationFailed([(OUT_NAMES.get(f, f), m) for f, m in exc.errors]) from exc
    names = await paged.related(session, principal=principal, resource_ids=resource_ids)
    order = {str(r): i for i, r in enumerate(resource_ids)}  # a slot lists its ids as text

    shown = {str(i): {"id": str(i), "name": names.resources[i].name} for i in resource_ids}

    data = []
    for slot in slots:
        free = sorted(slot.resource_ids, key=order.__getitem__)
        if mode == "roundrobin_random":
            free = [_CHOOSER.choice(free)]
        elif mode == "roundrobin_prioritized":
            free = free[:1]
        data.append(
            {
                "start": slot.start_time.isoformat(),
                "end": slot.end_time.isoformat(),
                "resources": [shown[i] for i in free],
            }
        )
    return Response(orjson.dumps(wrap(data)), media_type="application/json")
