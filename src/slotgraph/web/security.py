"""CSRF protection for the pages' forms, and the security headers every page carries.

CSRF: a double-submit cookie. Each page sets `sg_csrf` (HttpOnly) and puts the same token in a
hidden `csrf_token` field of its forms; a POST is accepted only if both are present and equal.
Another site can make a browser send our cookie, but it can neither read it nor set it, so it
cannot fill in the field. With `SLOTGRAPH_CSRF_SECRET` set, tokens are also signed (HMAC), so a
cookie planted through a sibling subdomain is refused too.

Over HTTPS the cookie is `SameSite=None; Secure`, so a page embedded in an iframe on one of the
app's `allowed_origins` still gets it; over plain HTTP (a laptop) it is `SameSite=Lax`. Over
HTTPS it is also named `__Host-sg_csrf`: a browser keeps such a cookie only if this very host set
it over HTTPS (no `Domain`), so a sibling subdomain or a network attacker on plain HTTP cannot
plant one, with or without SLOTGRAPH_CSRF_SECRET; a plain `sg_csrf` cookie is not read there.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import Response

from slotgraph.errors import Forbidden
from slotgraph.web.i18n import N_

CSRF_COOKIE = "sg_csrf"  # over plain HTTP; over HTTPS: HOST_CSRF_COOKIE
HOST_CSRF_COOKIE = "__Host-" + CSRF_COOKIE
CSRF_FIELD = "csrf_token"
_MAX_TOKEN = 200


class CsrfRefused(Forbidden):
    code = "csrf_failed"
    title = "Form expired"


def _secret(request: Request) -> bytes | None:
    value = getattr(request.app.state.settings, "csrf_secret", None)
    return value.get_secret_value().encode() if value is not None else None


def _sign(secret: bytes, nonce: str) -> str:
    return hmac.new(secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]


def _valid(request: Request, token: str) -> bool:
    if not token or len(token) > _MAX_TOKEN:
        return False
    secret = _secret(request)
    if secret is None:
        return True
    nonce, _, sig = token.partition(".")
    return bool(nonce) and hmac.compare_digest(sig, _sign(secret, nonce))


def cookie_name(request: Request) -> str:
    return HOST_CSRF_COOKIE if request.url.scheme == "https" else CSRF_COOKIE


def csrf_token(request: Request) -> str:
    """The token for this visitor's forms: the cookie's if it is valid, else a new one."""
    current = request.cookies.get(cookie_name(request), "")
    if _valid(request, current):
        return current
    nonce = secrets.token_urlsafe(24)
    secret = _secret(request)
    return f"{nonce}.{_sign(secret, nonce)}" if secret is not None else nonce


def set_csrf_cookie(request: Request, response: Response, token: str) -> None:
    secure = request.url.scheme == "https"
    response.set_cookie(
        cookie_name(request),
        token,
        max_age=7 * 24 * 3600,
        path="/",
        httponly=True,
        secure=secure,
        samesite="none" if secure else "lax",
    )


def check_csrf(request: Request, form: dict[str, str]) -> None:
    """Raise CsrfRefused unless the form's token matches the cookie (and its signature)."""
    cookie = request.cookies.get(cookie_name(request), "")
    sent = form.get(CSRF_FIELD, "")
    if not (cookie and sent and hmac.compare_digest(cookie, sent) and _valid(request, sent)):
        raise CsrfRefused(
            N_("The form has expired or did not come from this site; reload the page.")
        )


def security_headers(frame_ancestors: Iterable[str] = ()) -> dict[str, str]:
    """Headers for an HTML page. Scripts and styles come only from our own /static files (no
    inline script); `frame_ancestors` are the origins allowed to embed the page in an iframe."""
    ancestors = " ".join(["'self'", *frame_ancestors])
    csp = "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            "object-src 'none'",
            f"frame-ancestors {ancestors}",
        ]
    )
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }
