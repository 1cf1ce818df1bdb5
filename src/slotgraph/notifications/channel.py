"""The email channel's part of the delivery pipeline (services/deliveries.py).

Each app has two email targets (`webhook_endpoints` rows with format `email:customer` and
`email:owner`, made with the app and never listed as webhooks), so emails are claimed, leased,
ordered per booking, retried with backoff and logged exactly like webhooks. Which events they
want (at dispatch) is targets.py's; this module composes a message at send time
(`EmailChannel.compose`), which mints the link's token (ADR 0009) and counts the inbox's
emails (ADR 0020), and sends it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from zoneinfo import ZoneInfo

import orjson
from babel.dates import format_datetime
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from slotgraph import i18n, metrics
from slotgraph.appsettings import AppSettings
from slotgraph.db.models import App, Booking, Client, Event, Resource
from slotgraph.domain.deliveries import Outcome
from slotgraph.notifications import kinds
from slotgraph.notifications.subject import Subject
from slotgraph.notifications.transport import transport
from slotgraph.schemas import BookingOut
from slotgraph.schemas.fields import is_one_address
from slotgraph.services import customer_tokens, email_deliveries, email_quota
from slotgraph.settings import Settings

log = logging.getLogger("slotgraph.mail")
FORMATS = kinds.FORMATS


class Suppressed:
    """An email not sent: its inbox is at the app's limit for the hour (ADR 0020)."""


class EmailChannel:
    """Composes and sends one claimed email (the worker's `_send` for email targets)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        smtp = settings.smtp_url.get_secret_value() if settings.smtp_url else None
        self.transport = transport(
            smtp, mail_dir=settings.mail_dir, timeout=settings.smtp_timeout_seconds
        )
        self.base_url = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip(
            "/"
        )

    async def send(self, *, delivery_id: uuid.UUID, format_: str, payload: str) -> Outcome:
        started = time.monotonic()
        try:
            message = await self.compose(format_=format_, payload=payload, delivery_id=delivery_id)
        except Exception as exc:  # a bad template or a vanished row: logged, retried
            log.exception("email for delivery %s could not be composed", delivery_id)
            ms = int((time.monotonic() - started) * 1000)
            return Outcome(None, f"compose: {type(exc).__name__}: {exc}"[:500], ms, None)
        if message is None:
            return Outcome(204, None, 0, email_deliveries.NOTHING_TO_SEND)
        if isinstance(message, Suppressed):
            metrics.get().emails_suppressed.inc()
            limit = self.settings.customer_emails_per_hour
            return Outcome(204, None, 0, email_quota.SUPPRESSED.format(limit))
        name = f"{self.clock():%Y%m%dT%H%M%S}-{delivery_id}"
        return await self.transport.send(message, name=name)

    async def compose(
        self, *, format_: str, payload: str, delivery_id: uuid.UUID
    ) -> EmailMessage | Suppressed | None:
        # Jinja2 (render) and icalendar (ics) from the first email, not at every start: the
        # worker runs in every server process, and most never send an email (docs/testing.md).
        from slotgraph.notifications import render
        from slotgraph.notifications.ics import CONTENT_TYPE, booking_ics

        audience = kinds.AUDIENCE_OF[format_]
        event = orjson.loads(payload)
        data = event["data"]
        booking = BookingOut.model_validate(data["booking"])
        kind = kinds.kind_of(
            audience, event["type"], data.get("action"), data["booking"], moved=True
        )
        if kind is None:
            return None
        now = self.clock()
        async with self.sessions() as session, session.begin():
            found = (
                await session.execute(
                    select(App, Booking.locale)
                    .join(Booking, Booking.app_id == App.id)
                    .where(Booking.id == booking.booking_id)
                )
            ).first()
            if found is None:
                return None
            app, booking_locale = found
            client = await session.get(Client, booking.client_id) if booking.client_id else None
            resources = list(
                await session.scalars(select(Resource).where(Resource.id.in_(booking.resource_ids)))
            )
            if audience == "customer":
                to = [client.email] if client is not None and client.email else []
            else:
                to = sorted({r.email for r in resources if r.email})
            # An address an older version let in that names several mailboxes: none of them.
            to = [address for address in to if is_one_address(address)]
            if not to:
                return None
            if audience == "customer" and not await email_quota.take(  # ADR 0020
                session,
                app_id=app.id,
                address=to[0],
                delivery_id=delivery_id,
                now=now,
                limit=self.settings.customer_emails_per_hour,
            ):
                return Suppressed()
            # The link's token (ADR 0009): the customer's manage link, the owner's decision.
            link: customer_tokens.TokenKind | None = (
                "customer" if audience == "customer" else "owner" if kind.decides else None
            )
            token = None
            if link is not None:
                token = customer_tokens.mint(
                    session, kind=link, booking_id=booking.booking_id, app_id=app.id, now=now
                )
            app_settings = AppSettings.model_validate(app.settings or {})
            before = await _booking_before(session, event["id"]) if kind.moved else None
        main = next((r for r in resources if r.id == booking.resource_id), resources[0])
        zone = ZoneInfo(main.timezone)
        # The customer's emails speak the booking's locale (given on the API, or its page's);
        # the owner's, English.
        locale = booking_locale if audience == "customer" else None
        if not locale or not i18n.is_known_locale(locale):
            locale = i18n.DEFAULT_LOCALE
        gettext = i18n.translations(locale).gettext
        when = _when(booking.start_time, booking.end_time, zone, locale)
        context = {
            "kind": kind.name,
            "headline": gettext(kind.headline),
            "lang": locale.replace("_", "-"),
            "app_name": app.name,
            "booking": booking,
            "details": booking.details,
            "resource": {
                "name": main.name,
                "location": main.location,
                "timezone": main.timezone,
            },
            "customer": {
                "name": client.name if client else "",
                "email": client.email if client else None,
            },
            "when": when,
            "previous_when": (
                _when(before.start_time, before.end_time, zone, locale) if before else None
            ),
            "message": data.get("message"),
            "manage_url": f"{self.base_url}/manage/{token}" if audience == "customer" else None,
            "decide_url": f"{self.base_url}/owner/{token}" if kind.decides else None,
        }
        context["subject"] = gettext(kind.subject).format(
            resource=main.name, when=when, customer=context["customer"]["name"]
        )
        env = render.environment(
            self.settings.mail_templates_dir, app_settings.notifications.templates, locale
        )
        rendered = render.render(env, audience=audience, kind=kind.name, context=context)
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = ", ".join(to)
        message["Subject"] = Subject(rendered.subject)  # folded right (notifications/subject.py)
        message["Date"] = formatdate(now.timestamp())
        message["Message-ID"] = make_msgid(domain=_domain(self.settings.mail_from))
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        if audience == "customer" and kind.method is not None and client is not None:
            ics = booking_ics(
                booking,
                kind.method,
                summary=main.name,
                timezone=main.timezone,
                location=main.location,
                organizer=parseaddr(self.settings.mail_from)[1] or None,
                organizer_name=main.name,
                attendee=client.email,
                attendee_name=client.name,
                locale=locale,
            )
            maintype, subtype = CONTENT_TYPE.split("/")
            message.add_attachment(
                ics,
                maintype=maintype,
                subtype=subtype,
                filename="booking.ics",
                params={"method": kind.method},
            )
        # Last: set_content and the multipart conversions move Content-* headers into parts.
        message["Content-Language"] = context["lang"]
        return message


async def _booking_before(session: AsyncSession, event_id: str) -> BookingOut | None:
    """The booking as the event before this one showed it (a rescheduled email's old time)."""
    this = select(Event.booking_id, Event.seq).where(Event.id == uuid.UUID(event_id)).subquery()
    payload = await session.scalar(
        select(Event.payload)
        .join(this, Event.booking_id == this.c.booking_id)
        .where(Event.seq < this.c.seq)
        .order_by(Event.seq.desc())
        .limit(1)
    )
    old = orjson.loads(payload)["data"].get("booking") if payload else None
    return BookingOut.model_validate(old) if old else None


def _when(start: datetime, end: datetime, zone: ZoneInfo, locale: str) -> str:
    """ "Saturday 18 May 2024, 12:00 to 13:00 (Europe/Oslo)", "Samstag, 18. Mai 2024, 12:00
    bis 13:00 (Europe/Oslo)": in the resource's zone, Babel's names for `locale`, and the
    patterns (CLDR) and words of its catalogue."""
    gettext = i18n.translations(locale).gettext
    full, short = gettext("EEEE d MMMM y, HH:mm"), gettext("HH:mm")
    same_day = start.astimezone(zone).date() == end.astimezone(zone).date()
    babel = i18n.babel_locale(locale)
    day = format_datetime(start, full, tzinfo=zone, locale=babel)
    until = format_datetime(end, short if same_day else full, tzinfo=zone, locale=babel)
    return gettext("{start} to {end} ({zone})").format(start=day, end=until, zone=zone.key)


def _domain(address: str) -> str:
    _, addr = parseaddr(address)
    return addr.rpartition("@")[2] or "localhost"
