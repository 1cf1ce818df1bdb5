"""/v2/resources: Timekit's resources over slotgraph's.

Translation table (Timekit -> slotgraph): `name` -> name (or `first_name last_name`),
`timezone` -> timezone, `email` -> email, `meta` -> meta, `availability_constraints` (the weekly
ones) -> weekly_hours. `password` is accepted and dropped: slotgraph resources do not log in.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response

from slotgraph import timekit_shape
from slotgraph.api.deps import AnyKey, Now, SecretKey, Session
from slotgraph.api.timekit import constraints
from slotgraph.api.timekit.common import Pages, TimekitInput, Zone, parse, wrap
from slotgraph.schemas import ResourceCreate, ResourceOut, ResourceUpdate
from slotgraph.services import paged, resources

router = APIRouter(prefix="/resources", tags=["timekit"])
JsonBody = Annotated[Any, Body()]

IN: dict[str, str] = {
    "name": "name",
    "timezone": "timezone",
    "email": "email",
    "meta": "meta",
    "availability_constraints": "weekly_hours",
}
OUT_NAMES = {ours: theirs for theirs, ours in IN.items()}


class ResourceIn(TimekitInput):
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    timezone: str | None = None
    email: str | None = None
    meta: dict[str, Any] | None = None
    availability_constraints: list[Any] | None = None
    password: str | None = None


def translate(body: Any, *, now: Any) -> dict[str, Any]:
    tk = parse(ResourceIn, body)
    given = tk.model_dump(exclude_none=True)
    name = given.pop("name", None)
    first, last = given.pop("first_name", None), given.pop("last_name", None)
    given.pop("password", None)
    if name is None and (first or last):
        name = " ".join(p for p in (first, last) if p)
    if name is not None:
        given["name"] = name
    if "availability_constraints" in given:
        found = constraints.translate(
            given["availability_constraints"],
            field="availability_constraints",
            now=now,
            periods=False,
        )
        given["availability_constraints"] = (
            None if found.mask is None else constraints.weekly_hours(found.mask)
        )
    return {IN[k]: v for k, v in given.items()}


def resource(r: ResourceOut, zone: Any) -> dict[str, Any]:
    return {
        "id": str(r.resource_id),
        "name": r.name,
        "email": r.email,
        "timezone": r.timezone,
        "meta": r.meta,
        "availability_constraints": constraints.from_weekly_hours(r.weekly_hours),
        "created_at": timekit_shape.iso_in(r.created_at, zone),
        "updated_at": timekit_shape.iso_in(r.updated_at, zone),
    }


@router.post("", status_code=201)
async def create_resource(
    body: JsonBody, principal: SecretKey, session: Session, now: Now, zone: Zone, response: Response
) -> dict[str, Any]:
    data = parse(ResourceCreate, translate(body, now=now), OUT_NAMES)
    out = await resources.create_resource(session, principal=principal, data=data, now=now)
    response.headers["Location"] = f"/v2/resources/{out.resource_id}"
    return wrap(resource(out, zone))


@router.get("")
async def list_resources(
    request: Request, principal: AnyKey, session: Session, zone: Zone, pages: Pages
) -> dict[str, Any]:
    rows, total = await paged.list_resources(
        session, principal=principal, limit=pages.limit, offset=pages.offset
    )
    return pages.envelope(request, [resource(r, zone) for r in rows], total)


@router.get("/{resource_id}")
async def show_resource(
    resource_id: uuid.UUID, principal: AnyKey, session: Session, zone: Zone
) -> dict[str, Any]:
    out = await resources.get_resource(session, principal=principal, resource_id=resource_id)
    return wrap(resource(out, zone))


@router.put("/{resource_id}")
async def update_resource(
    resource_id: uuid.UUID,
    body: JsonBody,
    principal: SecretKey,
    session: Session,
    now: Now,
    zone: Zone,
) -> dict[str, Any]:
    data = parse(ResourceUpdate, translate(body, now=now), OUT_NAMES)
    out = await resources.update_resource(
        session, principal=principal, resource_id=resource_id, data=data, now=now
    )
    return wrap(resource(out, zone))


@router.delete("/{resource_id}")
async def delete_resource(
    resource_id: uuid.UUID, principal: SecretKey, session: Session, now: Now, zone: Zone
) -> dict[str, Any]:
    """Archived, never erased; 409 while bookings hold it."""
    out = await resources.archive_resource(
        session, principal=principal, resource_id=resource_id, now=now
    )
    return wrap(resource(out, zone))
