"""The calling app's own settings (secret key)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError

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
    _within_ceiling(body, request.app.state.settings.max_app_rate_limit)
    out = await apps.update_settings(session, app_id=principal.app_id, data=body)
    request.app.state.key_cache.clear()  # this process sees the change at once; others in 30 s
    request.app.state.cors_origins = None
    return out


def _within_ceiling(body: AppSettings, ceiling: int) -> None:
    """The operator's `SLOTGRAPH_MAX_APP_RATE_LIMIT`: a higher rate limit is 422, as the
    bounds of the model are."""
    if "rate_limits" not in body.model_fields_set:
        return
    limits = body.rate_limits
    errors = [
        {
            "type": "less_than_equal",
            "loc": ("body", "rate_limits", name),
            "msg": f"Input should be less than or equal to {ceiling} (this server's ceiling)",
            "input": getattr(limits, name),
            "ctx": {"le": ceiling},
        }
        for name in ("public_per_minute", "secret_per_minute")
        if name in limits.model_fields_set and getattr(limits, name) > ceiling
    ]
    if errors:
        raise RequestValidationError(errors)
