"""The webhook client connects only to addresses it has checked (DNS rebinding), and never to a
private one unless allowed."""

from __future__ import annotations

import asyncio

import pytest
from standardwebhooks.webhooks import Webhook

from slotgraph.webhooks import sender, signing
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


@pytest.mark.parametrize(
    ("answer", "kept"),
    [
        (b"content-length: 0\r\n\r\n", ""),
        (b"content-length: 5\r\n\r\nshort", "short"),
        # Longer than the 2 KB kept, and in two writes: the first 2,048 characters are kept.
        (b"content-length: 5000\r\n\r\n" + b"a" * 1500, "a" * 1500 + "b" * 548),
        (b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", "abcde"),
    ],
)
async def test_an_answer_s_first_2_kb_are_kept(answer: bytes, kept: str) -> None:
    async def answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\n" + answer)
        await writer.drain()
        if b"5000" in answer:
            writer.write(b"b" * 3500)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answering, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    async with server, sender.session(connections=1, allow_private=True) as http:
        outcome = await sender.send(
            http,
            url=url,
            msg_id="msg_1",
            body="{}",
            secrets_=[signing.new_secret()],
            allow_private=True,
        )
    assert (outcome.status_code, outcome.error, outcome.response_body) == (200, None, kept)


async def test_a_receiver_s_cookie_is_never_sent_back_nor_compression_asked_for() -> None:
    # One client sends every app's webhooks: a cookie one receiver sets would go with the next
    # sends to its host, whichever app's they are (and a receiver could fill the worker's
    # memory with them). The answer sets one; the second send to the host must not carry it.
    heads: list[bytes] = []

    async def answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            heads.append(head.lower())
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 200 OK\r\nset-cookie: tenant=a; Path=/; Max-Age=3600\r\n"
                b"content-length: 0\r\n\r\n"
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answering, "127.0.0.1", 0)
    url = f"http://localhost:{server.sockets[0].getsockname()[1]}/hook"  # a name: cookies kept
    async with server, sender.session(connections=1, allow_private=True) as http:
        for msg_id in ("msg_1", "msg_2"):
            outcome = await sender.send(
                http, url=url, msg_id=msg_id, body="{}", secrets_=[], allow_private=True
            )
            assert outcome.status_code == 200
    assert len(heads) == 2
    assert b"webhook-id: msg_2" in heads[1]
    assert b"cookie" not in heads[1]
    # Answers are kept as they came: none is asked for compressed.
    assert all(b"accept-encoding" not in head for head in heads)
