"""The CalDAV client connects only to public addresses unless private networks are allowed.

The URL is checked (resolved) before each call, and the client resolved it again to connect. A
host name whose DNS answers a public address to the check and a private one to the client (DNS
rebinding) reached the private network: cloud metadata, the database, Redis. Here the check
before is left out, as that DNS answer would make it pass, and the name resolves to loopback,
where a real CalDAV server (Radicale) answers.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from caldav.collection import Calendar

from slotgraph.calendars import remote
from tests.radicale import PASSWORD, USER, Radicale

EVENT = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:x\r\n"
    b"DTSTAMP:20300101T000000Z\r\nDTSTART:20300101T090000Z\r\nDTEND:20300101T100000Z\r\n"
    b"END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def by_name(radicale: Radicale) -> tuple[Calendar, remote.Account]:
    """A new calendar, and its URL with the host written as a name that resolves to loopback."""
    calendar = radicale.new_calendar()
    parts = urlsplit(str(calendar.url))
    url = f"http://localhost:{parts.port}{parts.path}"
    return calendar, remote.Account(url, USER, PASSWORD)


def test_the_client_does_not_connect_to_a_private_address(radicale: Radicale) -> None:
    calendar, account = by_name(radicale)
    with pytest.raises(remote.RemoteError) as refused:
        remote.probe(account, allow_private=False)
    assert refused.value.kind == "unreachable"
    assert "non-public address (127.0.0.1)" in str(refused.value)
    for call in (
        lambda: remote.pull(account, None, allow_private=False),
        lambda: remote.put_event(account, "x.ics", EVENT, allow_private=False),
        lambda: remote.delete_event(account, "x.ics", allow_private=False),
        lambda: remote.remove_pushed(account, allow_private=False),
    ):
        with pytest.raises(remote.RemoteError) as refused:
            call()
        assert refused.value.kind == "unreachable"
    assert calendar.events() == []  # nothing was written


def test_with_private_networks_allowed_it_connects(radicale: Radicale) -> None:
    # SLOTGRAPH_WEBHOOK_ALLOW_PRIVATE_NETWORKS: a CalDAV server on the operator's own network.
    _, account = by_name(radicale)
    assert remote.probe(account, allow_private=True) is not None
