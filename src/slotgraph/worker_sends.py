"""One attempt of one claimed delivery, on its channel: a webhook (signed POST), an email, or a
calendar push. The worker (worker.py) decides when and how many; this holds what a send needs
(the HTTP client, the channels) and counts each webhook attempt by its outcome."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from slotgraph import logs, metrics
from slotgraph.domain.deliveries import Outcome
from slotgraph.notifications.channel import FORMATS as EMAIL_FORMATS
from slotgraph.notifications.channel import EmailChannel
from slotgraph.services.deliveries import Claim
from slotgraph.settings import Settings
from slotgraph.syncer import CalendarSyncer
from slotgraph.worker_slots import SLOW_ROOM
from slotgraph.worker_steps import outcome_label

if TYPE_CHECKING:
    import aiohttp
    from prometheus_client import Counter


class Sends:
    def __init__(
        self, settings: Settings, *, emails: EmailChannel, calendars: CalendarSyncer
    ) -> None:
        self.settings = settings
        self.emails = emails
        self.calendars = calendars
        self._open = False  # inside client()
        # The HTTP client (and the sender, with aiohttp) from the first webhook send inside
        # client(): aiohttp and attrs are a tenth of a process start's imports, and a worker (or
        # a server running one) that has no webhook to send never needs them (docs/testing.md).
        self._http: aiohttp.ClientSession | None = None
        self._attempts = metrics.get().webhook_attempts
        # The counter's child per outcome, looked up once (`labels()` took 2.2 us a send).
        self._counted: dict[str, Counter] = {}

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[None]:
        """The block webhook sends run in (unless already in one): the HTTP client is opened
        by the block's first webhook send and closed at its end."""
        if self._open:
            yield
            return
        self._open = True
        try:
            yield
        finally:
            self._open = False
            if self._http is not None:
                http, self._http = self._http, None
                await http.close()

    def _connect(self) -> aiohttp.ClientSession:
        from slotgraph.webhooks import sender

        self._http = sender.session(
            connections=(1 + SLOW_ROOM) * self.settings.worker_batch,  # slots and slow sends
            allow_private=self.settings.webhook_allow_private_networks,
        )
        return self._http

    async def send(self, claim: Claim) -> Outcome:
        logs.request_id.set(claim.request_id)  # this task's log lines name the request
        if claim.calendar_id is not None:
            return await self.calendars.push(claim.calendar_id, claim.payload)
        if claim.format in EMAIL_FORMATS:
            return await self.emails.send(
                delivery_id=claim.delivery_id, format_=claim.format, payload=claim.payload
            )
        from slotgraph.webhooks import sender  # imported by _connect (0.3 us a send here)

        assert self._open, "sends run inside client()"
        outcome = await sender.send(
            self._http or self._connect(),
            url=claim.url,
            msg_id=str(claim.event_id),
            body=claim.payload,
            secrets_=claim.secrets,
            allow_private=self.settings.webhook_allow_private_networks,
            format_=claim.format,
            request_id=claim.request_id,
        )
        label = outcome_label(outcome)
        if (counted := self._counted.get(label)) is None:
            counted = self._counted[label] = self._attempts.labels(label)
        counted.inc()
        return outcome
