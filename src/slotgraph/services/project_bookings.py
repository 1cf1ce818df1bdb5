"""A booking made in a project's name: `meta.timekit.project_id` (the /v2 adapter's
`project_id`) names, with the public key, only a live project of its app, and only what that
project offers (services/projects.py keeps the projects themselves).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import Booking, Project
from slotgraph.domain.graphs import SEAT_GRAPHS
from slotgraph.errors import ValidationFailed
from slotgraph.schemas import BookingCreate
from slotgraph.services.common import Principal
from slotgraph.services.projects import NO_SUCH_PROJECT, ids_in
from slotgraph.timekit_shape import RESERVED

PROJECT_FIELD = f"meta.{RESERVED}.project_id"


def offered(project: Project) -> tuple[set[uuid.UUID], str | None]:
    """What a project offers a visitor: its resources (`resources`, and `availability.resources`
    when it sets them: what its widget shows, api/timekit/projects.py `for_widget`), and the
    graph it books (`booking.graph`), if it names one."""
    settings = project.settings if isinstance(project.settings, dict) else {}
    availability = settings.get("availability")
    booking = settings.get("booking")
    resources = set(ids_in(project.resource_ids))
    if isinstance(availability, dict):
        resources |= set(ids_in(availability.get("resources")))
    graph = booking.get("graph") if isinstance(booking, dict) else None
    return resources, graph if isinstance(graph, str) else None


async def check_public_booking(
    session: AsyncSession, *, principal: Principal, data: BookingCreate
) -> None:
    """A booking the public key makes in a project's name (`meta.timekit.project_id`, what /v2
    calls `project_id`) names a live project of its app, in that project's graph (if it names
    one), on one of its resources; a seat, in a class of the project (the class names it, or
    its resource is the project's). Else 422 naming the field. Before, any id was kept, so a
    visitor could file a booking under any project (its search, its webhooks' `project`).

    The secret key's bookings are the owner's own and are not checked. A read of its own: the
    project is only a label on the booking, so one archived in between does no harm."""
    reserved = data.meta.get(RESERVED)
    if principal.kind == "secret" or not isinstance(reserved, dict) or "project_id" not in reserved:
        return
    given = reserved["project_id"]
    try:  # as /v2 writes it: its search (`project.id:`) and the widget's match that text only
        project_id = uuid.UUID(given) if isinstance(given, str) else None
    except ValueError:
        project_id = None
    if str(project_id) != given:
        project_id = None
    async with session.begin():
        project = None
        if project_id is not None:
            project = await session.scalar(
                select(Project).where(
                    Project.id == project_id,
                    Project.app_id == principal.app_id,
                    Project.archived_at.is_(None),
                )
            )
        if project is None:
            raise ValidationFailed.one(PROJECT_FIELD, NO_SUCH_PROJECT)
        resources, graph = offered(project)
        if graph is not None and data.graph != graph:
            raise ValidationFailed.one("graph", f"project {project_id} books {graph} bookings")
        if data.graph in SEAT_GRAPHS:
            if data.owner_booking_id is None:
                return  # the create says what is missing
            owner = (
                await session.execute(
                    select(Booking.resource_id, Booking.meta).where(
                        Booking.id == data.owner_booking_id, Booking.app_id == principal.app_id
                    )
                )
            ).first()
            if owner is None:
                return  # the create answers for an unknown class
            labels = owner.meta.get(RESERVED) if isinstance(owner.meta, dict) else None
            named = isinstance(labels, dict) and labels.get("project_id") == str(project_id)
            if not named and owner.resource_id not in resources:
                raise ValidationFailed.one(
                    "owner_booking_id", f"not a class of project {project_id}"
                )
            return
        asked = [data.resource_id] if data.resource_id is not None else data.resource_ids or []
        field = "resource_id" if data.resource_id is not None else "resource_ids"
        outside = [str(r) for r in asked if r not in resources]
        if outside:
            raise ValidationFailed.one(
                field, f"not a resource of project {project_id}: {', '.join(outside)}"
            )
