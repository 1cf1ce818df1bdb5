"""The calling app's own settings (secret key)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from slotgraph.api.deps import SecretKey, Session
from slotgraph.appsettings import AppOut, AppSettings
from slotgraph.services import apps

router = APIRouter(prefix="/v1/app", tags=["app"])


@router.get("")
async def get_app(principal: SecretKey, session: Session) -> AppOut:
    """The app this key belongs to, with its settings (docs/security.md explains each)."""
    return await apps.get_app(session, app_id=principal.app_id)


@router.put("")
async def update_app(
    body: AppSettings, principal: SecretKey, session: Session, request: Request
) -> AppOut:
    """Change settings; fields left out keep their value (`rate_limits` merges field by field)."""
    ceiling = request.app.state.settings.max_app_rate_limit
    out = await apps.update_settings(
        session, app_id=principal.app_id, data=body, max_rate_limit=ceiling
    )
    request.app.state.key_cache.clear()  # this process sees the change at once; others in 30 s
    request.app.state.cors_origins = None
    return out
