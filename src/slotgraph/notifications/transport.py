"""Where a composed email goes: an SMTP server (aiosmtplib), or without one a directory of
.eml files (`make serve` without SLOTGRAPH_SMTP_URL: a newcomer opens them in a mail program).

SLOTGRAPH_SMTP_URL: `smtp://host:port` (plain; add `?starttls=true` to upgrade),
`smtps://host:465` (TLS from the first byte); `user:password@` before the host logs in;
`ca_file=/path/ca.pem` in the query trusts a private CA as well as the system's (certificates
are always verified).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from slotgraph.domain.deliveries import Outcome

log = logging.getLogger("slotgraph.mail")
_TRUE = {"1", "true", "yes", "on"}


class Transport(Protocol):
    async def send(self, message: EmailMessage, *, name: str) -> Outcome: ...


@dataclass(frozen=True)
class SmtpSettings:
    hostname: str
    port: int
    use_tls: bool
    start_tls: bool
    username: str | None
    password: str | None
    ca_file: str | None = None


def parse_smtp_url(url: str) -> SmtpSettings:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("SLOTGRAPH_SMTP_URL is smtp://host[:port] or smtps://host[:port]")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    tls = parts.scheme == "smtps"
    return SmtpSettings(
        hostname=parts.hostname,
        port=parts.port or (465 if tls else 25),
        use_tls=tls,
        start_tls=not tls and query.get("starttls", "").lower() in _TRUE,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        ca_file=query.get("ca_file") or None,
    )


# A whole email within this many timeouts. aiosmtplib's timeout is per command, so a server
# that answered each command just before it made one email last six times as long (11.5 s with
# a 2 s timeout), holding a send slot the worker shares with every app's webhooks.
EMAIL_TIMEOUTS = 2


class SmtpTransport:
    def __init__(self, url: str, *, timeout: float) -> None:
        self.smtp = parse_smtp_url(url)
        self.timeout = timeout

    async def send(self, message: EmailMessage, *, name: str) -> Outcome:
        import aiosmtplib  # by the first email over SMTP, not at every worker's start

        started = time.monotonic()
        s = self.smtp
        whole = asyncio.timeout(self.timeout * EMAIL_TIMEOUTS)
        try:
            async with whole:
                answers, last = await aiosmtplib.send(
                    message,
                    hostname=s.hostname,
                    port=s.port,
                    username=s.username,
                    password=s.password,
                    use_tls=s.use_tls,
                    start_tls=s.start_tls,
                    cert_bundle=s.ca_file,
                    timeout=self.timeout,
                )
        except aiosmtplib.SMTPResponseException as exc:
            return Outcome(exc.code, f"smtp: {exc.message}"[:500], _ms(started), None)
        except (aiosmtplib.SMTPException, OSError) as exc:  # (a TimeoutError is an OSError)
            error = f"smtp: {type(exc).__name__}: {exc}"
            if whole.expired():
                most = self.timeout * EMAIL_TIMEOUTS
                error = f"smtp: the server took longer than {most:g} s for one email"
            return Outcome(None, error[:500], _ms(started), None)
        refused = {rcpt: answer for rcpt, answer in answers.items() if answer.code >= 400}
        if refused:
            code = max(a.code for a in refused.values())
            return Outcome(code, f"smtp: refused {sorted(refused)}"[:500], _ms(started), None)
        return Outcome(250, None, _ms(started), last[:500])


class FileTransport:
    """Writes each email to `directory/<name>.eml` (atomically: a temporary file, then a
    rename) and logs one line."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    async def send(self, message: EmailMessage, *, name: str) -> Outcome:
        started = time.monotonic()
        path = self.directory / f"{name}.eml"
        try:
            await asyncio.to_thread(self._write, path, bytes(message))
        except OSError as exc:
            return Outcome(None, f"mail_dir: {exc}"[:500], _ms(started), None)
        # No address, name or subject: logs carry no personal data (docs/security.md).
        log.info("email written to %s", path)
        return Outcome(250, None, _ms(started), f"written to {path}")

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)


def transport(smtp_url: str | None, *, mail_dir: str, timeout: float) -> Transport:
    if smtp_url:
        return SmtpTransport(smtp_url, timeout=timeout)
    return FileTransport(mail_dir)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
