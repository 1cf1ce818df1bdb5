"""`/owner/{token}`: the owner's confirm/decline page for a request (linked from the request
email). A GET only shows the request and two buttons; the change happens on the buttons' POST
(with the CSRF token), so a mail scanner that follows the link changes nothing.

- GET  /owner/{token}            the request, and Confirm / Decline while it is one
- POST /owner/{token}/confirm    confirm it (the slot is checked as for the secret key)
- POST /owner/{token}/decline    decline it
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from slotgraph.api.deps import Now, Session
from slotgraph.errors import Conflict
from slotgraph.i18n import N_
from slotgraph.services import customer_tokens as tokens
from slotgraph.web.forms import read_form
from slotgraph.web.routing import WebRoute
from slotgraph.web.security import check_csrf
from slotgraph.web.templating import render

router = APIRouter(route_class=WebRoute, include_in_schema=False)

DONE = {"confirm": N_("The request is confirmed."), "decline": N_("The request is declined.")}


def _page(
    request: Request,
    view: tokens.OwnerView,
    token: str,
    *,
    message: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "owner.html",
        {
            "view": view,
            "booking": view.booking,
            "base": f"/owner/{token}",
            "done": DONE.get(request.query_params.get("done", "")),
            "message": message,
        },
        tz=ZoneInfo(view.timezone),
        status_code=status_code,
    )


@router.get("/owner/{token}")
async def owner(request: Request, token: str, session: Session, now: Now) -> Response:
    return _page(request, await tokens.owner_view(session, token=token, now=now), token)


@router.post("/owner/{token}/{action}")
async def decide(request: Request, token: str, action: str, session: Session, now: Now) -> Response:
    check_csrf(request, await read_form(request))
    try:
        await tokens.owner_decide(session, token=token, action=action, now=now)
    except Conflict as refused:  # decided meanwhile, or the time was taken
        view = await tokens.owner_view(session, token=token, now=now)
        return _page(request, view, token, message=refused.detail, status_code=409)
    return RedirectResponse(f"/owner/{token}?done={action}", status_code=303)
