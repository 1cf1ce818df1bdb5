"""An app's settings: one pydantic model, stored as JSON in `apps.settings`.

Adding a setting is adding a field here (with a default): `GET/PUT /v1/app`, the CLI
(`slotgraph apps settings`), the stored JSON and the OpenAPI document all follow from this model.
Stored settings are read back through the model, so an older row simply gets the new defaults.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from slotgraph.domain.graphs import GRAPHS

# The graphs a public (browser) key may create bookings in unless the app says otherwise.
# `group_owner` creates a class of seats: never public.
DEFAULT_PUBLIC_GRAPHS = (
    "instant",
    "confirm_decline",
    "instant_payment",
    "group_customer",
    "group_customer_payment",
)
NEVER_PUBLIC_GRAPHS = frozenset({"group_owner"})
PUBLIC_GRAPH_NAMES = tuple(g for g in GRAPHS if g not in NEVER_PUBLIC_GRAPHS)


# A host (a name or [IPv6]) and an optional port, nothing else: an origin is written into the
# pages' Content-Security-Policy (frame-ancestors) and CORS headers, so `;`, spaces or `*` in it
# would add directives there.
_NETLOC = re.compile(r"(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


def _origin(value: str) -> str:
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not _NETLOC.fullmatch(parts.netloc.lower())
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ValueError("an origin is scheme://host[:port], e.g. https://shop.example")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _public_graph(value: str) -> str:
    if value in NEVER_PUBLIC_GRAPHS:
        raise ValueError(f"{value} is never available to the public key")
    if value not in GRAPHS:
        raise ValueError(f"unknown graph; one of: {', '.join(PUBLIC_GRAPH_NAMES)}")
    return value


def _unique(value: list[str]) -> list[str]:
    return list(dict.fromkeys(value))


Origin = Annotated[str, Field(max_length=300), AfterValidator(_origin)]
PublicGraph = Annotated[
    str,
    Field(json_schema_extra={"enum": list(PUBLIC_GRAPH_NAMES)}),
    AfterValidator(_public_graph),
]


class RateLimits(BaseModel):
    """Requests per minute. The public key's limit counts per client IP address."""

    model_config = ConfigDict(extra="forbid")

    # At most the operator's ceiling, SLOTGRAPH_MAX_APP_RATE_LIMIT: a setting of the server, not
    # of this model, so services/apps.py `over_ceiling` checks it, and api/openapi.py writes it
    # into the request's schema of each app it builds (a fixed `le` here said 1,000,000 while
    # the server refused more than 60,000).
    public_per_minute: Annotated[int, Field(ge=1)] = 600
    secret_per_minute: Annotated[int, Field(ge=1)] = 6_000


TemplateText = Annotated[str, Field(max_length=20_000)]


class Notifications(BaseModel):
    """Emails to the customer and to the resource's owner (docs/emails.md)."""

    model_config = ConfigDict(extra="forbid")

    customer: bool = True
    owner: bool = True
    # Template overrides by file name (e.g. `customer.html`, `customer.cancelled.txt`,
    # `owner.new_request.subject`); rendered in a sandbox.
    templates: Annotated[dict[str, TemplateText], Field(max_length=50)] = Field(
        default_factory=dict
    )


class AppSettings(BaseModel):
    """Everything an app can configure. In `PUT /v1/app`, fields left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    allowed_origins: Annotated[list[Origin], Field(max_length=100), AfterValidator(_unique)] = (
        Field(
            default_factory=list,
            description="Origins whose pages may call the public key's routes (CORS).",
        )
    )
    public_graphs: Annotated[
        list[PublicGraph], Field(max_length=len(GRAPHS)), AfterValidator(_unique)
    ] = Field(
        default_factory=lambda: list(DEFAULT_PUBLIC_GRAPHS),
        description="Graphs the public key may create bookings in (never `group_owner`).",
    )
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    notifications: Notifications = Field(default_factory=Notifications)
    require_if_match: bool = Field(
        default=False,
        description="Changes (PUT, PATCH, DELETE, actions) must send `If-Match` with the "
        "object's ETag; without it they answer 428 precondition_required.",
    )


class AppOut(AppSettings):
    app_id: uuid.UUID
    name: str
    created_at: datetime


def merged(current: AppSettings, update: AppSettings) -> AppSettings:
    """`current` with the fields set in `update`; nested settings merge field by field."""
    return AppSettings.model_validate(_merge(current.model_dump(), _set_fields(update)))


def _set_fields(model: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in model.model_fields_set:
        value = getattr(model, name)
        out[name] = _set_fields(value) if isinstance(value, BaseModel) else value
    return out


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
