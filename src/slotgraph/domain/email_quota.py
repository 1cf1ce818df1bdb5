"""How many customer emails one address may get from one app in a sliding hour (ADR 0020). Pure:
the caller reads and writes the counted sends (services/email_quota.py) under a lock.

A send is `[seconds since the epoch, delivery id]`. The list holds the sends admitted in the last
`WINDOW`, at most `limit` of them: the state of one address is bounded by the limit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

WINDOW = timedelta(hours=1)

Send = list[float | str]  # [epoch seconds, delivery id]; JSON keeps no tuples


class Decision(NamedTuple):
    admitted: bool
    sends: list[Send]  # what to store: the window's sends, this one added if admitted


def mailbox_key(address: str) -> str:
    """The inbox an address reaches, as far as the address shows it: lower case, and without a
    `+tag` on the local part (`Ann+1@Example.com` and `ann@example.com` are one inbox at every
    large provider), so that spelling one address many ways does not multiply its limit."""
    local, at, domain = address.strip().lower().rpartition("@")
    if not at:
        return domain
    return f"{local.split('+', 1)[0] or local}@{domain}"


def admit(sends: list[Send], *, delivery_id: str, now: datetime, limit: int) -> Decision:
    """Whether the email of `delivery_id` may go, given the sends counted so far.

    A retry of a delivery already counted in the window goes without counting again (an SMTP
    failure must not use up the customer's hour). The caller never asks with no limit set."""
    since = (now - WINDOW).timestamp()
    kept = [s for s in sends if float(s[0]) > since]
    if any(s[1] == delivery_id for s in kept):
        return Decision(True, kept)
    if len(kept) >= limit:
        return Decision(False, kept)
    kept.append([now.timestamp(), delivery_id])
    return Decision(True, kept)
