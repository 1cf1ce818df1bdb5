"""The SMTP client against a server of our own that answers slowly or not at all: an email is
over within two timeouts, whatever the server does. No database: the transport alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage

from slotgraph.notifications.transport import SmtpTransport


@asynccontextmanager
async def smtp_server(wait: float, *, stall_on: bytes = b"") -> AsyncIterator[str]:
    """Answers each command after `wait` seconds; never answers the command `stall_on`."""
    never = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 slow ESMTP\r\n")
        while line := await reader.readline():
            command = line.strip().upper()
            if stall_on and command.startswith(stall_on):
                await never.wait()
            await asyncio.sleep(wait)
            if command.startswith(b"EHLO"):
                writer.write(b"250-slow\r\n250 OK\r\n")
            elif command.startswith(b"DATA"):
                writer.write(b"354 go on\r\n")
                while (body := await reader.readline()) not in (b".\r\n", b""):
                    del body
                await asyncio.sleep(wait)
                writer.write(b"250 queued\r\n")
            elif command.startswith(b"QUIT"):
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 OK\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"smtp://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        never.set()


def _email() -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "x"
    message.set_content("hello")
    return message


async def test_a_server_answering_each_command_late_is_cut_off() -> None:
    # Each answer just under the 1 s timeout: before, the email took about 6 s and was sent.
    async with smtp_server(0.9) as url:
        started = time.monotonic()
        outcome = await SmtpTransport(url, timeout=1.0).send(_email(), name="x")
    assert time.monotonic() - started < 4.0
    assert outcome.status_code is None
    assert outcome.error == "smtp: the server took longer than 2 s for one email"


async def test_a_server_that_stalls_is_cut_off_by_the_timeout() -> None:
    # Held before too: aiosmtplib's timeout ends a command that is never answered.
    for stall_on in (b"EHLO", b"DATA"):
        async with smtp_server(0.0, stall_on=stall_on) as url:
            started = time.monotonic()
            outcome = await SmtpTransport(url, timeout=1.0).send(_email(), name="x")
        assert time.monotonic() - started < 4.0
        assert outcome.status_code is None
        assert "Timed out" in (outcome.error or ""), outcome.error


async def test_a_prompt_server_still_gets_the_email() -> None:
    async with smtp_server(0.0) as url:
        outcome = await SmtpTransport(url, timeout=1.0).send(_email(), name="x")
    assert (outcome.status_code, outcome.error) == (250, None)
