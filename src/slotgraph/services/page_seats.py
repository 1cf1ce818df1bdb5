"""A group_customer booking page books seats only in the classes it shows.

The page's form names its class by id (`seat`), and the create path takes any class of the app,
as the public key's create does. A page shows the classes on its own resources
(services/availability.py `groups`), so a form is checked against the same rule here: the class
must be one of the app's on a resource of the page, at the time the visitor chose. Before, a
visitor of one page booked a seat in any class of the app whose id it knew (another page's,
or one on a resource no page offers), whatever that page asks of its visitors.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.db.models import Booking


async def class_start(
    session: AsyncSession,
    *,
    app_id: uuid.UUID,
    resource_ids: Sequence[uuid.UUID],
    seat: uuid.UUID,
) -> datetime | None:
    """When class `seat` starts, if a page of `resource_ids` shows it; else None. A read of its
    own, independent of the seats left: a form sent again after its booking took the last seat
    passes, and is answered by its first send (services/page_once.py)."""
    async with session.begin():
        start: datetime | None = await session.scalar(
            select(Booking.start_time).where(
                Booking.id == seat,
                Booking.app_id == app_id,
                Booking.graph == "group_owner",
                Booking.resource_id.in_(resource_ids),
            )
        )
    return start
