"""/v2/projects: CRUD, and the public embed and hosted forms the booking widget loads.

Translation table (Timekit -> slotgraph's project): `name` -> name, `slug` -> slug,
`resources` -> resource_ids, and `booking`, `availability`, `availability_constraints`,
`customer_fields`, `ui` -> settings (kept as given: the widget reads them).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response

from slotgraph import timekit_shape
from slotgraph.api.deps import AnyKey, Now, SecretKey, Session, key_from_header
from slotgraph.api.timekit import constraints
from slotgraph.api.timekit.common import Pages, TimekitInput, Zone, parse, wrap
from slotgraph.services import projects
from slotgraph.services.common import Principal
from slotgraph.services.projects import ProjectData, ProjectOut

router = APIRouter(prefix="/projects", tags=["timekit"])
JsonBody = Annotated[Any, Body()]

SETTINGS = ("booking", "availability", "availability_constraints", "customer_fields", "ui")
# What the widget reads from an embedded or hosted project (booking-js 3.3.1, widget.js and
# helpers/config.js): everything it merges into its own config before it starts.
WIDGET_READS = ("id", "slug", "name", "app_key", *SETTINGS)


class ProjectIn(TimekitInput):
    name: str | None = None
    slug: str | None = None
    resources: list[uuid.UUID] | None = None
    booking: dict[str, Any] | None = None
    availability: dict[str, Any] | None = None
    availability_constraints: list[Any] | None = None
    customer_fields: dict[str, Any] | None = None
    ui: dict[str, Any] | None = None


def translate(body: Any, *, now: Any) -> ProjectData:
    tk = parse(ProjectIn, body if body is not None else {})
    if tk.availability_constraints is not None:  # refuse a bad one now, not in every query
        constraints.translate(
            tk.availability_constraints, field="availability_constraints", now=now
        )
    settings = {k: getattr(tk, k) for k in SETTINGS if getattr(tk, k) is not None}
    return ProjectData(name=tk.name, slug=tk.slug, resource_ids=tk.resources, settings=settings)


def project(p: ProjectOut, zone: Any) -> dict[str, Any]:
    return {
        "id": str(p.project_id),
        "name": p.name,
        "slug": p.slug,
        "resources": [str(r) for r in p.resource_ids],
        **{k: p.settings.get(k, [] if k == "availability_constraints" else {}) for k in SETTINGS},
        "created_at": timekit_shape.iso_in(p.created_at, zone),
        "updated_at": timekit_shape.iso_in(p.updated_at, zone),
    }


def for_widget(p: ProjectOut, principal: Principal, key: str) -> dict[str, Any]:
    """Exactly what the widget reads. `app_key` is the widget key the request came with; a
    secret key is never echoed into a page."""
    shown = {
        "id": str(p.project_id),
        "slug": p.slug,
        "name": p.name,
        "app_key": key if principal.kind == "public" else None,
        **{k: p.settings.get(k, [] if k == "availability_constraints" else {}) for k in SETTINGS},
    }
    availability = dict(shown["availability"])
    availability.setdefault("resources", [str(r) for r in p.resource_ids])
    shown["availability"] = availability
    return {k: shown[k] for k in WIDGET_READS}


def presented_key(request: Request) -> str:
    return key_from_header(request.headers.get("Authorization", ""))


@router.post("", status_code=201)
async def create_project(
    body: JsonBody, principal: SecretKey, session: Session, now: Now, zone: Zone, response: Response
) -> dict[str, Any]:
    out = await projects.create_project(
        session, principal=principal, data=translate(body, now=now), now=now
    )
    response.headers["Location"] = f"/v2/projects/{out.project_id}"
    return wrap(project(out, zone))


@router.get("")
async def list_projects(
    request: Request, principal: SecretKey, session: Session, zone: Zone, pages: Pages
) -> dict[str, Any]:
    rows, total = await projects.list_projects(
        session, principal=principal, limit=pages.limit, offset=pages.offset
    )
    return pages.envelope(request, [project(p, zone) for p in rows], total)


@router.get("/embed/{project_id}")
async def embed_project(
    project_id: uuid.UUID, request: Request, principal: AnyKey, session: Session
) -> dict[str, Any]:
    """The project as the widget embeds it (`project_id` + `app_key`); the widget key may."""
    out = await projects.get_project(session, principal=principal, project_id=project_id)
    return wrap(for_widget(out, principal, presented_key(request)))


@router.get("/hosted/{slug}")
async def hosted_project(
    slug: str, request: Request, principal: AnyKey, session: Session
) -> dict[str, Any]:
    """The project by slug (`project_slug`). Unlike Timekit, a key is needed: the slug is only
    unique within an app, and an open lookup would let anyone enumerate projects."""
    out = await projects.get_project(session, principal=principal, slug=slug[:100])
    return wrap(for_widget(out, principal, presented_key(request)))


@router.get("/{project_id}")
async def show_project(
    project_id: uuid.UUID, principal: SecretKey, session: Session, zone: Zone
) -> dict[str, Any]:
    out = await projects.get_project(session, principal=principal, project_id=project_id)
    return wrap(project(out, zone))


@router.put("/{project_id}")
async def update_project(
    project_id: uuid.UUID,
    body: JsonBody,
    principal: SecretKey,
    session: Session,
    now: Now,
    zone: Zone,
) -> dict[str, Any]:
    out = await projects.update_project(
        session, principal=principal, project_id=project_id, data=translate(body, now=now), now=now
    )
    return wrap(project(out, zone))


@router.delete("/{project_id}")
async def delete_project(
    project_id: uuid.UUID, principal: SecretKey, session: Session, now: Now, zone: Zone
) -> dict[str, Any]:
    """Archived, never erased: it disappears from every answer."""
    out = await projects.archive_project(
        session, principal=principal, project_id=project_id, now=now
    )
    return wrap(project(out, zone))
