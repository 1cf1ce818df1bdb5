"""The webhook client connects only to addresses it has checked (DNS rebinding), and never to a
private one unless allowed."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

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


@pytest.mark.parametrize(
    ("host", "refused_address"),
    [
        ("127.0.0.1", "127.0.0.1"),  # an address: not resolved, so checked before the send
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),  # the same, written as IPv6
        ("localhost", "127.0.0.1"),  # a name: refused by the resolver, at the connection
    ],
)
async def test_a_send_to_a_private_address_is_refused_and_never_arrives(
    host: str, refused_address: str
) -> None:
    with running_receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", host)
        async with sender.session(connections=1, allow_private=False) as http:
            outcome = await sender.send(
                http, url=url, msg_id="msg_1", body="{}", secrets_=[], allow_private=False
            )
    assert outcome.status_code is None
    assert outcome.error is not None
    assert outcome.error.startswith("refused: ")
    assert refused_address in outcome.error
    assert receiver.requests == []


async def test_a_send_to_an_allowed_private_address_arrives_signed() -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    with running_receiver() as receiver:
        async with sender.session(connections=1, allow_private=True) as http:
            outcome = await sender.send(
                http,
                url=receiver.url,
                msg_id="msg_2",
                body='{"a": 1}',
                secrets_=[secret],
                allow_private=True,
            )
    assert outcome.status_code == 200
    [arrived] = receiver.requests
    assert arrived.headers["webhook-id"] == "msg_2"
    # Verified with the reference library, as a receiver would (it raises if the signature fails).
    assert Webhook(secret).verify(arrived.body, arrived.headers) == {"a": 1}
