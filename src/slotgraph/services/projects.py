"""Projects: what a Timekit booking widget shows and books, stored on their own.

A project names resources and carries the widget's settings (`booking`, `availability`,
`availability_constraints`, `customer_fields`, `ui`) as opaque JSON: the adapter reads the parts it
translates (api/timekit), the widget reads the rest. Projects are archived, never erased.

A booking names its project in `meta.timekit.project_id` (the /v2 adapter's `project_id`): with
the public key only a live project of its app, and only what that project offers
(services/project_bookings.py).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import Project, Resource
from slotgraph.errors import Conflict, NotFound, ValidationFailed
from slotgraph.services.common import Principal
from slotgraph.services.paged import counted

MAX_SETTINGS_BYTES = 64_000  # Timekit's own limit for a request's JSON
MAX_RESOURCES = 200
LIVE_BATCH = 1_000  # ids a statement asks about: SQLite takes at most 32,766 variables
NO_SUCH_PROJECT = "no such project"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


class SlugTaken(Conflict):
    code = "slug_taken"
    title = "Slug taken"


@dataclass(frozen=True)
class ProjectData:
    """A new project, or (in an update) the fields to change: None keeps a field as it is."""

    name: str | None = None
    slug: str | None = None
    resource_ids: list[uuid.UUID] | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # keys given replace stored ones


@dataclass(frozen=True)
class ProjectOut:
    project_id: uuid.UUID
    name: str
    slug: str
    resource_ids: list[uuid.UUID]
    settings: dict[str, Any]
    archived: bool
    created_at: datetime
    updated_at: datetime


def ids_in(values: Any) -> list[uuid.UUID]:
    """The ids in a list of stored JSON (a project's `resource_ids` or settings), in their
    order, once each: what is no id is no id (a row written before the write checks may hold
    anything)."""
    found: dict[uuid.UUID, None] = {}
    for value in values if isinstance(values, list) else []:
        try:
            found[uuid.UUID(value)] = None
        except (TypeError, ValueError, AttributeError):
            continue
    return list(found)


def _shown(p: Project) -> list[uuid.UUID] | None:
    """The resources the project's widget shows (`availability.resources`), if it sets them. A
    value stored before the write check that is no list (`"all"`) stands for the project's own
    resources, which its public key may book through it (`project_bookings.offered`): before,
    the widget was handed it as stored, and every search in the project was a 422 on
    `resources`, a field the visitor never sent."""
    availability = p.settings.get("availability") if isinstance(p.settings, dict) else None
    if not isinstance(availability, dict) or "resources" not in availability:
        return None
    shown = availability["resources"]
    return ids_in(shown if isinstance(shown, list) else p.resource_ids)


def _out(p: Project, live: set[uuid.UUID] | None = None) -> ProjectOut:
    """`live`: the project's resources not archived (`_live`); None: all are (just checked).
    Those its widget shows go as its `resources` do."""
    ids = ids_in(p.resource_ids)
    settings = p.settings
    shown = _shown(p)
    if live is not None and shown is not None:
        availability = {
            **settings["availability"],
            "resources": [str(r) for r in shown if r in live],
        }
        settings = {**settings, "availability": availability}
    return ProjectOut(
        project_id=p.id,
        name=p.name,
        slug=p.slug,
        resource_ids=ids if live is None else [r for r in ids if r in live],
        settings=settings,
        archived=p.archived_at is not None,
        created_at=p.created_at,
        updated_at=p.updated_at,
    )


# The resources a project's widget shows (`settings.availability.resources`, which `offered`
# lets the public key book and /v2/availability searches). Checked as `resources` are: before,
# any text was kept, and an id of another app, an archived or a made-up one made every
# visitor's search a 422, or named another app's resource in what the widget offers.
SHOWN_FIELD = "availability.resources"


def _shown_resources(value: Any) -> list[uuid.UUID] | str:
    """`availability.resources` as ids, or what is wrong with it."""
    if not isinstance(value, list):
        return "a list of resource ids"
    if len(value) > MAX_RESOURCES:
        return f"at most {MAX_RESOURCES} resources"
    ids: list[uuid.UUID] = []
    for item in value:
        try:
            ids.append(uuid.UUID(item))
        except (TypeError, ValueError, AttributeError):
            return f"not a resource id: {str(item)[:100]!r}"
    return ids


async def _check(session: AsyncSession, app_id: uuid.UUID, data: ProjectData) -> None:
    errors: list[tuple[str, str]] = []
    if data.slug is not None and not _SLUG.match(data.slug):
        errors.append(("slug", "lowercase letters, digits and dashes, at most 100"))
    if data.name is not None and not 1 <= len(data.name) <= 200:
        errors.append(("name", "from 1 to 200 characters"))
    if len(orjson.dumps(data.settings)) > MAX_SETTINGS_BYTES:
        errors.append(("settings", f"at most {MAX_SETTINGS_BYTES} bytes of JSON"))
    named: dict[str, list[uuid.UUID]] = {"resources": list(data.resource_ids or [])}
    availability = data.settings.get("availability")
    if isinstance(availability, dict) and "resources" in availability:
        shown = _shown_resources(availability["resources"])
        if isinstance(shown, str):
            errors.append((SHOWN_FIELD, shown))
        else:
            named[SHOWN_FIELD] = shown
    for where, ids in named.items():
        if len(ids) > MAX_RESOURCES:
            errors.append((where, f"at most {MAX_RESOURCES} resources"))
            continue
        if not ids:
            continue
        found = set(
            await session.scalars(
                select(Resource.id).where(
                    Resource.app_id == app_id,
                    Resource.id.in_(ids),
                    Resource.archived_at.is_(None),
                )
            )
        )
        missing = [str(i) for i in ids if i not in found]
        if missing:
            errors.append((where, f"no such resource: {', '.join(missing)}"))
    if errors:
        raise ValidationFailed(errors)


async def _live(
    session: AsyncSession, app_id: uuid.UUID, rows: Sequence[Project]
) -> set[uuid.UUID]:
    """The resources of `rows` that are not archived. An archived resource is withdrawn: it
    drops out of every project that names it (its widget's availability named it, and every
    visitor's search was a 422 "no such resource" from the moment it was archived)."""
    ids = sorted(
        {r for p in rows for r in ids_in(p.resource_ids)}
        | {r for p in rows for r in _shown(p) or ()}
    )
    live: set[uuid.UUID] = set()
    for at in range(0, len(ids), LIVE_BATCH):  # a page of 200 projects names up to 80,000
        live.update(
            await session.scalars(
                select(Resource.id).where(
                    Resource.app_id == app_id,
                    Resource.id.in_(ids[at : at + LIVE_BATCH]),
                    Resource.archived_at.is_(None),
                )
            )
        )
    return live


async def _flush(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        raise SlugTaken("Another project of this app has this slug.") from exc


async def create_project(
    session: AsyncSession, *, principal: Principal, data: ProjectData, now: datetime
) -> ProjectOut:
    if data.name is None or data.slug is None:
        raise ValidationFailed(
            [(f, "required") for f in ("name", "slug") if getattr(data, f) is None]
        )
    async with session.begin():
        await _check(session, principal.app_id, data)
        project = Project(
            app_id=principal.app_id,
            name=data.name,
            slug=data.slug,
            resource_ids=[str(i) for i in dict.fromkeys(data.resource_ids or [])],
            settings=data.settings,
            created_at=now,
            updated_at=now,
        )
        session.add(project)
        await _flush(session)
        return _out(project)


async def _load(
    session: AsyncSession,
    app_id: uuid.UUID,
    *,
    project_id: uuid.UUID | None = None,
    slug: str | None = None,
    lock: bool = False,
) -> Project:
    stmt = select(Project).where(Project.app_id == app_id, Project.archived_at.is_(None))
    if project_id is not None:
        stmt = stmt.where(Project.id == project_id)
    if slug is not None:
        stmt = stmt.where(Project.slug == slug)
    if lock:
        stmt = stmt.with_for_update()
    project = await session.scalar(stmt)
    if project is None:
        raise NotFound(f"No project {project_id or slug}.")
    return project


async def get_project(
    session: AsyncSession,
    *,
    principal: Principal,
    project_id: uuid.UUID | None = None,
    slug: str | None = None,
) -> ProjectOut:
    """One live project, by id or by slug (the widget's embed and hosted forms)."""
    async with session.begin():
        project = await _load(session, principal.app_id, project_id=project_id, slug=slug)
        return _out(project, await _live(session, principal.app_id, [project]))


async def named_project(
    session: AsyncSession, *, principal: Principal, project_id: uuid.UUID, field: str
) -> ProjectOut:
    """The live project a request's body names in `field`: one that is not (unknown, another
    app's, archived) is a wrong value of that field, 422 naming it, as a booking in a project's
    name is (services/project_bookings.py); 404 is for the object a path names. Timekit answers a
    body's unknown id so (Laravel's `exists` rule: 422 with `errors.<field>`), and its clients
    show that field's message."""
    try:
        return await get_project(session, principal=principal, project_id=project_id)
    except NotFound:
        raise ValidationFailed.one(field, NO_SUCH_PROJECT) from None


async def list_projects(
    session: AsyncSession, *, principal: Principal, limit: int, offset: int
) -> tuple[list[ProjectOut], int]:
    """A page of live projects, oldest first, and how many there are in all."""
    live = [Project.app_id == principal.app_id, Project.archived_at.is_(None)]
    async with session.begin():
        rows, total = await counted(
            session, Project, live, (Project.created_at, Project.id), limit, offset
        )
        kept = await _live(session, principal.app_id, rows)
        return [_out(p, kept) for p in rows], total


async def update_project(
    session: AsyncSession,
    *,
    principal: Principal,
    project_id: uuid.UUID,
    data: ProjectData,
    now: datetime,
) -> ProjectOut:
    async with session.begin():
        project = await _load(session, principal.app_id, project_id=project_id, lock=True)
        await _check(session, principal.app_id, data)
        if data.name is not None:
            project.name = data.name
        if data.slug is not None:
            project.slug = data.slug
        if data.resource_ids is not None:
            project.resource_ids = [str(i) for i in dict.fromkeys(data.resource_ids)]
        if data.settings:
            merged = {**project.settings, **data.settings}
            if len(orjson.dumps(merged)) > MAX_SETTINGS_BYTES:
                raise ValidationFailed.one("settings", f"at most {MAX_SETTINGS_BYTES} bytes")
            project.settings = merged
        project.updated_at = now
        await _flush(session)
        return _out(project, await _live(session, principal.app_id, [project]))


async def archive_project(
    session: AsyncSession, *, principal: Principal, project_id: uuid.UUID, now: datetime
) -> ProjectOut:
    """Archive: the project disappears from every answer; its bookings are untouched. The
    answer shows it as a read did, its resources those of the app that are live (`_live`):
    before, it echoed the ids stored before the write checks, another app's included."""
    async with session.begin():
        project = await _load(session, principal.app_id, project_id=project_id, lock=True)
        project.archived_at = now
        project.updated_at = now
        return _out(project, await _live(session, principal.app_id, [project]))
