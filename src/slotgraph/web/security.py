"""CSRF protection for the pages' forms, and the security headers every page carries.

CSRF: a double-submit cookie. Each page sets `sg_csrf` (HttpOnly) and puts the same token in a
hidden `csrf_token` field of its forms; a POST is accepted only if both are present and equal.
Another site can make a browser send our cookie, but it can neither read it nor set it, so it
cannot fill in the field. Tokens are also signed (HMAC), always: with `SLOTGRAPH_CSRF_SECRET`
when the operator sets it, else with the installation's own secret (`instance_secrets.csrf`,
made by migration 0014, so every server process and every restart signs alike). A cookie
planted through a sibling subdomain (or a network attacker, over plain HTTP) with a value of its
own, or one signed by another installation, is refused. Before, without the setting, tokens
were not signed and any planted value passed. What signing cannot tell: a token this server
signed for the attacker, planted in the victim's browser (a double-submit cookie without a
login knows no visitor); over HTTPS the `__Host-` cookie closes that too.

Over HTTPS the cookie is `SameSite=None; Secure`, so a page embedded in an iframe on one of the
app's `allowed_origins` still gets it; over plain HTTP (a laptop) it is `SameSite=Lax`. Over
HTTPS it is also named `__Host-sg_csrf`: a browser keeps such a cookie only if this very host set
it over HTTPS (no `Domain`), so a sibling subdomain or a network attacker on plain HTTP cannot
plant one, with or without SLOTGRAPH_CSRF_SECRET; a plain `sg_csrf` cookie is not read there.
"Over HTTPS" is the request's scheme, or an `https://` SLOTGRAPH_PUBLIC_URL (`is_https`): behind
a proxy that ends TLS without forwarding the scheme, the pages saw `http` and used the plain
cookie. Over plain HTTP the limitation stays, and docs/security.md says what it allows.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from slotgraph.errors import Forbidden
from slotgraph.i18n import N_
from slotgraph.services.instance import read_instance_secret

CSRF_COOKIE = "sg_csrf"  # over plain HTTP; over HTTPS: HOST_CSRF_COOKIE
HOST_CSRF_COOKIE = "__Host-" + CSRF_COOKIE
CSRF_FIELD = "csrf_token"
_MAX_TOKEN = 200


class CsrfRefused(Forbidden):
    code = "csrf_failed"
    title = "Form expired"


async def load_csrf_secret(app: Any) -> None:
    """Know the secret that signs tokens (once per process): SLOTGRAPH_CSRF_SECRET, else the
    installation's, from the database. Called by every page's route before it runs; an error
    page the guard renders before any page was served has no token (nor a form)."""
    if getattr(app.state, "csrf_secret", None) is not None:
        return
    configured = getattr(app.state.settings, "csrf_secret", None)
    # Set but empty (`SLOTGRAPH_CSRF_SECRET=`) is unset: a key everyone knows signs anyone's token.
    if configured is not None and configured.get_secret_value().strip():
        app.state.csrf_secret = configured.get_secret_value().encode()
    else:
        value = await read_instance_secret(app.state.sessions, "csrf")
        app.state.csrf_secret = value.encode()


def _secret(request: Request) -> bytes | None:
    secret: bytes | None = getattr(request.app.state, "csrf_secret", None)
    return secret


def _sign(secret: bytes, nonce: str) -> str:
    return hmac.new(secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]


def _valid(request: Request, token: str) -> bool:
    # A cookie or field is any text a browser (or a script) sends: compare_digest raises
    # TypeError on a str that is not ASCII, which was a 500 on every page.
    if not token or len(token) > _MAX_TOKEN or not token.isascii():
        return False
    secret = _secret(request)
    if secret is None:
        return False  # never unsigned (load_csrf_secret runs before every page's route)
    nonce, _, sig = token.partition(".")
    return bool(nonce) and hmac.compare_digest(sig, _sign(secret, nonce))


def is_https(request: Request) -> bool:
    """Whether visitors reach these pages over HTTPS: the request says so (`https`, or
    X-Forwarded-Proto from a proxy named in SLOTGRAPH_FORWARDED_ALLOW_IPS), or the operator
    does, with an `https://` SLOTGRAPH_PUBLIC_URL. The latter covers a proxy that ends TLS
    without saying so: the pages saw `http` and used the plain cookie, which a sibling
    subdomain can plant (module docstring)."""
    if request.url.scheme == "https":
        return True
    configured = getattr(request.app.state.settings, "public_url", None) or ""
    return configured.lower().startswith("https://")


def cookie_name(request: Request) -> str:
    return HOST_CSRF_COOKIE if is_https(request) else CSRF_COOKIE


def csrf_token(request: Request) -> str:
    """The token for this visitor's forms: the cookie's if it is valid, else a new one."""
    current = request.cookies.get(cookie_name(request), "")
    if _valid(request, current):
        return current
    secret = _secret(request)
    if secret is None:
        return ""  # an error page before the secret is known: it has no form, and sets no cookie
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_sign(secret, nonce)}"


def set_csrf_cookie(request: Request, response: Response, token: str) -> None:
    if not token:
        return
    secure = is_https(request)
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
    if not (_valid(request, sent) and hmac.compare_digest(cookie.encode(), sent.encode())):
        raise CsrfRefused(
            N_("The form has expired or did not come from this site; reload the page.")
        )


def security_headers(
    frame_ancestors: Iterable[str] = (),
    *,
    scripts: Iterable[str] = (),
    inline_styles: bool = False,
    workers: Iterable[str] = (),
) -> dict[str, str]:
    """Headers for an HTML page. Scripts and styles come only from our own /static files (no
    inline script); `frame_ancestors` are the origins allowed to embed the page in an iframe.
    The API reference (api/reference.py) adds its inline scripts' hashes (`scripts`), and ReDoc
    its run-time styles and search worker (`inline_styles`, `workers`)."""
    ancestors = " ".join(["'self'", *frame_ancestors])
    csp = "; ".join(
        [
            "default-src 'self'",
            " ".join(["script-src 'self'", *scripts]),
            "style-src 'self'" + (" 'unsafe-inline'" if inline_styles else ""),
            "img-src 'self' data:",
            "connect-src 'self'",
            *([" ".join(["worker-src 'self'", *workers])] if workers else []),
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
