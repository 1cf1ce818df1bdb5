"""What every /v2 route shares: Timekit's headers, the `{"data": ...}` wrapper, pagination."""

from __future__ import annotations

import math
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, ValidationError

from slotgraph.errors import ValidationFailed
from slotgraph.schemas.fields import known_zone, unknown_zone


class TimekitInput(BaseModel):
    """A Timekit request body: unknown fields are refused, so a typo is never silently lost."""

    model_config = ConfigDict(extra="forbid")


def parse(model: type[BaseModel], body: Any, names: dict[str, str] | None = None) -> Any:
    """Validate a body; errors name Timekit's fields (`names` maps our paths back to theirs)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc, names or {}) from None


def validation_failed(exc: ValidationError, names: dict[str, str]) -> ValidationFailed:
    errors = []
    for e in exc.errors():
        path = ".".join(str(p) for p in e["loc"])
        errors.append((names.get(path, path) or "body", e["msg"]))
    return ValidationFailed(errors)


async def output_zone(
    timezone: Annotated[str | None, Header(alias="Timekit-Timezone")] = None,
    app: Annotated[str | None, Header(alias="Timekit-App")] = None,
    context: Annotated[str | None, Header(alias="Timekit-Context")] = None,
) -> ZoneInfo:
    """The zone timestamps are answered in. `Timekit-App` and `Timekit-Context` are accepted
    and ignored: the key alone names the app, and every context gets the same answers."""
    del app, context
    return zone_named(timezone, "Timekit-Timezone") if timezone else ZoneInfo("UTC")


def zone_named(name: str, field: str) -> ZoneInfo:
    zone = known_zone(name)
    if zone is None:
        raise ValidationFailed.one(field, unknown_zone(name))
    return zone


Zone = Annotated[ZoneInfo, Depends(output_zone)]


def includes(
    include: Annotated[str | None, Query(max_length=500)] = None,
) -> frozenset[str]:
    """`?include=attributes,event,customers`: the related parts to add to an answer."""
    return frozenset(p.strip() for p in (include or "").split(",") if p.strip())


Includes = Annotated[frozenset[str], Depends(includes)]


class Paging:
    """Timekit pages by number: `limit` (default 50, at most 200 here) and `page` (from 1)."""

    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    ) -> None:
        self.limit = limit
        self.page = page

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit

    def envelope(self, request: Request, data: list[Any], total: int) -> dict[str, Any]:
        """Timekit's (Laravel's) pagination envelope around one page."""
        last = max(1, math.ceil(total / self.limit))

        def url(page: int) -> str:
            return str(request.url.include_query_params(page=page, limit=self.limit))

        return {
            "total": total,
            "per_page": self.limit,
            "current_page": self.page,
            "last_page": last,
            "next_page_url": url(self.page + 1) if self.page < last else None,
            "prev_page_url": url(self.page - 1) if self.page > 1 else None,
            "from": self.offset + 1 if data else None,
            "to": self.offset + len(data) if data else None,
            "data": data,
        }


Pages = Annotated[Paging, Depends(Paging)]


def wrap(data: Any) -> dict[str, Any]:
    return {"data": data}
