"""Apps (tenants) and their API keys."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotgraph.appsettings import AppOut, AppSettings, merged
from slotgraph.db.models import ApiKey, App
from slotgraph.errors import NotFound, ValidationFailed
from slotgraph.notifications import targets as email_targets
from slotgraph.services.common import KeyKind, Principal

_PREFIX: dict[KeyKind, str] = {"secret": "sk_", "public": "pk_"}


def hash_key(key: str) -> str:
    """Keys are 192 random bits, so a plain SHA-256 is enough (no password stretching needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(kind: KeyKind) -> str:
    return _PREFIX[kind] + secrets.token_urlsafe(24)


@dataclass(frozen=True)
class CreatedApp:
    app_id: uuid.UUID
    name: str
    secret_key: str
    public_key: str


async def create_tenant(
    session: AsyncSession, *, name: str, now: datetime, secret_key: str | None = None
) -> CreatedApp:
    """Create a tenant (an app) with one secret and one public key. The keys are returned once,
    here."""
    if secret_key is not None and not secret_key.startswith(_PREFIX["secret"]):
        secret_key = _PREFIX["secret"] + secret_key
    async with session.begin():
        app = App(name=name, created_at=now)
        session.add(app)
        await session.flush()
        session.add_all(
            email_targets.new_targets(app.id, now)
        )  # its email channel (docs/emails.md)
        keys: dict[KeyKind, str] = {
            "secret": secret_key or new_key("secret"),
            "public": new_key("public"),
        }
        for kind, key in keys.items():
            session.add(
                ApiKey(
                    app_id=app.id,
                    kind=kind,
                    key_hash=hash_key(key),
                    prefix=key[:7],
                    created_at=now,
                )
            )
    return CreatedApp(app.id, app.name, keys["secret"], keys["public"])


@dataclass(frozen=True)
class AddedKey:
    app_id: uuid.UUID
    key_id: uuid.UUID
    kind: KeyKind
    key: str


async def add_key(
    session: AsyncSession, *, app_id: uuid.UUID, kind: KeyKind, now: datetime
) -> AddedKey:
    """A new key for an app, beside the ones it has (a rotation's first half: the old key works
    until `revoke_key`). Returned once, here; stored as its hash."""
    key = new_key(kind)
    async with session.begin():
        if await session.get(App, app_id) is None:
            raise NotFound(f"No app {app_id}.")
        row = ApiKey(
            app_id=app_id, kind=kind, key_hash=hash_key(key), prefix=key[:7], created_at=now
        )
        session.add(row)
        await session.flush()
        return AddedKey(app_id, row.id, kind, key)


async def revoke_key(
    session: AsyncSession, *, app_id: uuid.UUID, key_id: uuid.UUID, now: datetime
) -> tuple[ApiKey, int]:
    """Refuse an app's key from now on (a server process that used it in the last 30 s may
    still take it that long: api/deps.py's cache). Revoking a revoked key keeps its first
    `revoked_at`. Returns the key and how many live secret keys the app has left."""
    async with session.begin():
        row = await session.get(ApiKey, key_id, with_for_update=True)
        if row is None or row.app_id != app_id:
            raise NotFound(f"No key {key_id} in app {app_id}.")
        if row.revoked_at is None:
            row.revoked_at = now
            await session.flush()  # autoflush is off: the count below must see it
        live = await session.scalar(
            select(func.count())
            .select_from(ApiKey)
            .where(ApiKey.app_id == app_id, ApiKey.kind == "secret", ApiKey.revoked_at.is_(None))
        )
    return row, int(live or 0)


async def list_apps(session: AsyncSession) -> list[tuple[App, list[ApiKey]]]:
    async with session.begin():
        apps = (await session.scalars(select(App).order_by(App.created_at))).all()
        keys = (await session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all()
    return [(a, [k for k in keys if k.app_id == a.id]) for a in apps]


async def count_apps(session: AsyncSession) -> int:
    async with session.begin():
        return int(await session.scalar(select(func.count()).select_from(App)) or 0)


async def authenticate(session: AsyncSession, *, key: str) -> Principal | None:
    async with session.begin():
        row = (
            await session.execute(
                select(ApiKey.id, ApiKey.app_id, ApiKey.kind, App.settings)
                .join(App, App.id == ApiKey.app_id)
                .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
            )
        ).first()
    if row is None:
        return None
    kind: KeyKind = "secret" if row.kind == "secret" else "public"
    settings = AppSettings.model_validate(row.settings or {})
    return Principal(app_id=row.app_id, key_id=row.id, kind=kind, settings=settings)


def _app_out(app: App) -> AppOut:
    settings = AppSettings.model_validate(app.settings or {})
    return AppOut(app_id=app.id, name=app.name, created_at=app.created_at, **dict(settings))


async def get_app(session: AsyncSession, *, app_id: uuid.UUID) -> AppOut:
    async with session.begin():
        app = await session.get(App, app_id)
        if app is None:
            raise NotFound(f"No app {app_id}.")
        return _app_out(app)


async def update_settings(
    session: AsyncSession, *, app_id: uuid.UUID, data: AppSettings, max_rate_limit: int
) -> AppOut:
    """Partial update: the fields set in `data` replace the stored ones (nested ones by field).
    A rate limit above the operator's ceiling (`max_rate_limit`, SLOTGRAPH_MAX_APP_RATE_LIMIT)
    and email templates an app may not use are one 422 naming each of them, in the order sent
    (notifications/template_rules.py). `PUT /v1/app` and `slotgraph apps settings` both call
    this: neither can set what the other refuses."""
    # Jinja2 (which parses the templates) only here: most processes never change settings.
    from slotgraph.notifications import template_rules

    above = over_ceiling(data, max_rate_limit)
    refused = above + [
        (f"notifications.templates.{name}", problem)
        for name, text in data.notifications.templates.items()
        if (problem := template_rules.problem(text)) is not None
    ]
    if refused:  # the ceiling's type is the one pydantic gives a `le` bound
        raise ValidationFailed(refused, types=dict.fromkeys(dict(above), "less_than_equal"))
    async with session.begin():
        app = await session.get(App, app_id, with_for_update=True)
        if app is None:
            raise NotFound(f"No app {app_id}.")
        current = AppSettings.model_validate(app.settings or {})
        app.settings = merged(current, data).model_dump(mode="json")
        await session.flush()
        return _app_out(app)


def over_ceiling(data: AppSettings, ceiling: int) -> list[tuple[str, str]]:
    """The rate limits set in `data` above the operator's ceiling, as (field, message). A value
    stored before a lower ceiling stays stored and counts as the ceiling (api/ratelimit.py)."""
    if "rate_limits" not in data.model_fields_set:
        return []
    limits = data.rate_limits
    return [
        (
            f"rate_limits.{name}",
            f"Input should be less than or equal to {ceiling} (this server's ceiling)",
        )
        for name in ("public_per_minute", "secret_per_minute")
        if name in limits.model_fields_set and getattr(limits, name) > ceiling
    ]


async def all_allowed_origins(session: AsyncSession) -> frozenset[str]:
    """Every origin some app allows (CORS preflights carry no key, so name no app)."""
    async with session.begin():
        rows = (await session.scalars(select(App.settings))).all()
    return frozenset(o for s in rows for o in AppSettings.model_validate(s or {}).allowed_origins)
