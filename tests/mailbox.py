"""A real SMTP server on loopback for tests (aiosmtpd), collecting what it receives."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from icalendar import Calendar


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])  # exactly as read (notifications/subject.py)

    def part(self, content_type: str) -> EmailMessage | None:
        for part in self.message.walk():
            if part.get_content_type() == content_type and not part.is_multipart():
                assert isinstance(part, EmailMessage)
                return part
        return None

    def text(self) -> str:
        part = self.part("text/plain")
        assert part is not None
        return str(part.get_content())

    def html(self) -> str:
        part = self.part("text/html")
        assert part is not None
        return str(part.get_content())

    def calendar(self) -> Calendar | None:
        part = self.part("text/calendar")
        if part is None:
            return None
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        return Calendar.from_ical(payload)


@dataclass
class Mailbox:
    port: int
    received: list[Received] = field(default_factory=list)
    refuse: bool = False
    delay: float = 0.0  # seconds before answering each message (sends in flight)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.refuse:
            return "451 try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    box = Mailbox(free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
