"""All /v2 routes, under one router the app includes."""

from __future__ import annotations

from fastapi import APIRouter

from slotgraph.api.timekit import availability, bookings, projects, resources
from slotgraph.api.timekit.errors import PREFIX

router = APIRouter(prefix=PREFIX)
for module in (bookings, availability, resources, projects):
    router.include_router(module.router)
