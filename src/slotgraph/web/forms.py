"""Reading an HTML form body: urlencoded, bounded, one value per name."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

from slotgraph.errors import BadRequest

MAX_FORM_BYTES = 32 * 1024


async def read_form(request: Request) -> dict[str, str]:
    """The form's fields (the first value of each name). Anything but a urlencoded body of at
    most 32 KiB without NUL characters is a 400: the pages' forms never send anything else."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequest("Send the form as application/x-www-form-urlencoded.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise BadRequest("The form is too large.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("The form could not be read.") from None
    out: dict[str, str] = {}
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:  # no column holds it (PostgreSQL: a 500)
            raise BadRequest("The form could not be read.")
        out.setdefault(name, value)
    return out
