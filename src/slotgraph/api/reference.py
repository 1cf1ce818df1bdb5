"""The interactive API reference: /docs (Swagger UI), its OAuth2 redirect, and /redoc, from the
package's own assets (fastapi_offline's files under STATIC, no CDN), with the pages' security
headers (web/security.py `security_headers`): they share the pages' origin, so a script
injected here would act there. Each page's own inline script (Swagger UI's start, the
redirect's hand-back) is allowed by its hash, nothing else inline; ReDoc's styles are made by
its script at run time, so its page alone allows inline styles (never scripts).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse

from slotgraph.web.security import security_headers

STATIC = "/static-offline-docs"  # fastapi_offline's mount of its files (FastAPIOffline)
REDIRECT = "/docs/oauth2-redirect"
router = APIRouter()
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


@router.get("/docs", include_in_schema=False)
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=REDIRECT,
        swagger_js_url=f"{root}{STATIC}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{STATIC}/swagger-ui.css",
        swagger_favicon_url=f"{root}{STATIC}/favicon.png",
        swagger_ui_parameters=request.app.swagger_ui_parameters,
    )
    return _guarded(page)


@router.get(REDIRECT, include_in_schema=False)
async def swagger_ui_redirect() -> HTMLResponse:
    return _guarded(get_swagger_ui_oauth2_redirect_html())


@router.get("/redoc", include_in_schema=False)
async def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{STATIC}/redoc.standalone.js",
        with_google_fonts=False,
        redoc_favicon_url=f"{root}{STATIC}/favicon.png",
    )
    return _guarded(page, inline_styles=True, workers=("blob:",))


def _guarded(
    page: HTMLResponse, *, inline_styles: bool = False, workers: Iterable[str] = ()
) -> HTMLResponse:
    """`page` with the pages' headers, its inline scripts allowed by their hashes."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(bytes(page.body))
    ]
    page.headers.update(
        security_headers(scripts=hashes, inline_styles=inline_styles, workers=workers)
    )
    return page
