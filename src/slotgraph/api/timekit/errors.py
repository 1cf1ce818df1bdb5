"""Errors as Timekit answers them: `{"error": "..."}`, and for 422 also `{"errors": {field: [..]}}`.

The one error handler (api/problems.py) renders every error of a /v2 request through here, so
the status codes and `code`s stay slotgraph's own while the body has Timekit's shape.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

PREFIX = "/v2"


def is_timekit(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def render(
    status: int,
    code: str,
    detail: str,
    *,
    fields: list[tuple[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": detail, "code": code, **(extra or {})}
    if fields:
        errors: dict[str, list[str]] = {}
        for field, message in fields:
            errors.setdefault(field or "body", []).append(message)
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)
