"""The webhook client connects only to addresses it has checked (DNS rebinding)."""

from __future__ import annotations

import pytest

from slotgraph.webhooks import sender
from slotgraph.webhooks.ssrf import UrlNotAllowed
from tests.receiver import running_receiver


async def test_the_connection_itself_refuses_a_name_that_resolves_to_a_private_address() -> None:
    # `send` checks the URL first; a name can resolve differently a moment later. The client's
    # own resolution, the one it connects to, is checked too: here without the first check.
    with running_receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost")
        async with sender.session(connections=1, allow_private=False) as http:
            with pytest.raises(UrlNotAllowed, match="non-public address"):
                await http.post(url, data=b"{}")
        async with (
            sender.session(connections=1, allow_private=True) as http,
            http.post(url, data=b"{}") as response,
        ):
            assert response.status == 200
    assert len(receiver.requests) == 1  # only the allowed one arrived
